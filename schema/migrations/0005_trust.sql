-- Trust that rests on people's signatures (schema/TRUST.md).
--
-- Every signed statement is kept as the JSON of vault_core::trust::Signed: the exact
-- text that was signed and the signatures on it. The server checks them when they
-- arrive; clients check them again against the trust root they pinned.

-- The person's public id (`vault1...`: age recipient and Ed25519 key), the signed
-- enrolment (NULL for the trust root's admins, who are vouched for by the root itself),
-- whether an admin's enrolment has its second admin's approval, and the signed statement
-- that disabled them.
ALTER TABLE users ADD COLUMN public_id TEXT;
ALTER TABLE users ADD COLUMN enrolment TEXT;
ALTER TABLE users ADD COLUMN approved INTEGER NOT NULL DEFAULT 1 CHECK (approved IN (0, 1));
ALTER TABLE users ADD COLUMN disabled_by_statement TEXT;
CREATE UNIQUE INDEX users_by_public_id ON users (public_id);

-- The custodian's signature on each key version's recipient.
ALTER TABLE case_keys ADD COLUMN statement TEXT;
-- The signed statement that made an admin a custodian (NULL for the case's creator,
-- whose signature on key version 1 says as much).
ALTER TABLE custodians ADD COLUMN statement TEXT;
-- The signed grant, with the approving admin's signature once a covert grant is approved.
ALTER TABLE grants ADD COLUMN statement TEXT;
-- The recorder's signature on what it uploaded; a recording without one is not listed
-- or released.
ALTER TABLE recordings ADD COLUMN statement TEXT;
