-- Risk management's verdict on each kept batch's signals (the service's answer, or the
-- fallback applied), so a replay applies it again and comes out as live did.
ALTER TABLE prediction_batches ADD COLUMN risk_verdict TEXT NOT NULL DEFAULT '';
