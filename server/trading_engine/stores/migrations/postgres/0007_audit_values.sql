-- Every audited action says who acted with which roles, why, and what it changed from what
-- (JSON objects by name); records from before keep the defaults.
ALTER TABLE audit_log ADD COLUMN actor_roles TEXT NOT NULL DEFAULT '[]';
ALTER TABLE audit_log ADD COLUMN reason TEXT NOT NULL DEFAULT '';
ALTER TABLE audit_log ADD COLUMN old_values TEXT NOT NULL DEFAULT '{}';
ALTER TABLE audit_log ADD COLUMN new_values TEXT NOT NULL DEFAULT '{}';
