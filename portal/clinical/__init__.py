"""Clinical rules shared by referrals and reports: scoring, bands, outcomes, TRD counting."""
