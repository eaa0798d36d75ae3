-- The access log as an RFC 6962 Merkle tree (issue 14): the hash of every perfect
-- subtree of the entries' leaves, written once, in the transaction that appends the leaf
-- completing it. Node (level, idx) covers entries idx * 2^level .. (idx + 1) * 2^level;
-- level 0 holds the leaf hashes SHA-256(0x00 || encode(entry)). A log of n entries holds
-- fewer than 2n nodes; any tree head or proof folds at most 64 of them. Logs older than
-- this migration are filled in by the server when it opens them (db.rs).
CREATE TABLE merkle_nodes (
    level INTEGER NOT NULL,
    idx   INTEGER NOT NULL,
    hash  BLOB NOT NULL CHECK (length(hash) = 32),
    PRIMARY KEY (level, idx)
) WITHOUT ROWID;

CREATE TRIGGER merkle_nodes_no_update BEFORE UPDATE ON merkle_nodes
BEGIN SELECT RAISE(ABORT, 'the Merkle tree is append-only'); END;
CREATE TRIGGER merkle_nodes_no_delete BEFORE DELETE ON merkle_nodes
BEGIN SELECT RAISE(ABORT, 'the Merkle tree is append-only'); END;
