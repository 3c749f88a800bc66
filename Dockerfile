# One image for web, worker and beat.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_ENV=production

RUN groupadd --system portal && useradd --system --gid portal --home /app portal
WORKDIR /app

COPY pyproject.toml requirements.lock README.md ./
COPY portal ./portal
COPY referrals ./referrals
COPY messaging ./messaging
COPY reports ./reports
COPY manage.py ./
RUN pip install --no-cache-dir -c requirements.lock . \
    && mkdir -p /app/var /app/staticfiles && chown -R portal:portal /app/var /app/staticfiles

# collectstatic needs settings but no real secrets; throw-away values are used for this step only.
RUN DJANGO_ENV=development PORTAL_VAR_DIR=/tmp/build-var python manage.py collectstatic --noinput \
    && rm -rf /tmp/build-var

USER portal
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status == 200 else 1)"
CMD ["gunicorn", "portal.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "4", "--timeout", "60", "--access-logfile", "-"]
