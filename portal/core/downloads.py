"""The one way a decrypted file leaves the portal: as a download no cache keeps."""

from collections.abc import Iterable

from django.http import StreamingHttpResponse
from django.utils.http import content_disposition_header


def file_download_response(
    chunks: Iterable[bytes], *, content_type: str, filename: str, size: int
) -> StreamingHttpResponse:
    """Stream ``chunks`` as ``Content-Disposition: attachment`` (never inline), unsniffable and
    uncached; the caller has already checked access and the file's integrity."""
    response = StreamingHttpResponse(chunks, content_type=content_type)
    response["Content-Disposition"] = (
        content_disposition_header(as_attachment=True, filename=filename) or "attachment"
    )
    response["Content-Length"] = str(size)
    response["Cache-Control"] = "no-store"
    response["X-Content-Type-Options"] = "nosniff"
    return response
