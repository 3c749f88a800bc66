"""Referrals: patients, referrals, screening, attachments and the referral lifecycle."""
