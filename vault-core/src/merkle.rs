//! RFC 6962 / RFC 9162 Merkle trees: leaf and node hashes, tree heads, and inclusion and
//! consistency proofs, made and checked.
//!
//! ```text
//! leaf_hash(d)    = SHA-256(0x00 || d)
//! node_hash(l, r) = SHA-256(0x01 || l || r)
//! MTH({})         = SHA-256("")
//! MTH({d0})       = leaf_hash(d0)
//! MTH(D[n])       = node_hash(MTH(D[0:k]), MTH(D[k:n])), k the largest power of 2 < n
//! ```
//!
//! Proofs are made from a [`Subtrees`] source (the leaves in memory here; stored subtree
//! hashes on a server) and checked with nothing but the hashes, by the algorithms of RFC
//! 9162 §2.1.3.2 and §2.1.4.2. The checks are tested against the transparency-dev
//! reference vectors (`tests/merkle_vectors.rs`).

use ring::digest::{Context, SHA256};

/// A SHA-256 hash: a leaf, a node or a tree head.
pub type Hash = [u8; 32];

fn digest(parts: &[&[u8]]) -> Hash {
    let mut c = Context::new(&SHA256);
    for p in parts {
        c.update(p);
    }
    c.finish().as_ref().try_into().expect("SHA-256 is 32 bytes")
}

/// The hash of a leaf whose data is `data`.
pub fn leaf_hash(data: &[u8]) -> Hash {
    digest(&[&[0x00], data])
}

/// The hash of an inner node.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    digest(&[&[0x01], left, right])
}

/// The head of the empty tree.
pub fn empty_root() -> Hash {
    digest(&[])
}

/// The largest power of two smaller than `n` (`n` > 1).
fn split(n: u64) -> u64 {
    debug_assert!(n > 1);
    1 << (63 - (n - 1).leading_zeros())
}

/// Where proofs get the hashes of whole subtrees from.
pub trait Subtrees {
    /// `MTH(D[start:end])`, for `start < end`.
    fn subtree(&self, start: u64, end: u64) -> Hash;
}

/// Leaf hashes in memory: every subtree computed from them.
impl Subtrees for [Hash] {
    fn subtree(&self, start: u64, end: u64) -> Hash {
        root(&self[start as usize..end as usize])
    }
}

/// Where a log keeps its tree: the hash of every perfect subtree once it is complete,
/// node `(level, index)` being `MTH(D[index * 2^level .. (index + 1) * 2^level])` (level 0:
/// the leaf hashes). A log of n leaves holds fewer than 2n of them, each written once,
/// when its last leaf arrives; any subtree a proof needs is then a fold of at most 64.
pub trait PerfectNodes {
    fn node(&self, level: u32, index: u64) -> Hash;
}

/// A tree read from its perfect nodes.
pub struct Stored<'a, P: ?Sized>(pub &'a P);

impl<P: PerfectNodes + ?Sized> Subtrees for Stored<'_, P> {
    fn subtree(&self, start: u64, end: u64) -> Hash {
        let folded = fold_perfect(start, end, |level, i| Ok::<_, std::convert::Infallible>(self.0.node(level, i)));
        match folded {
            Ok(h) => h,
            Err(never) => match never {},
        }
    }
}

/// `MTH(D[start:end])` of a tree kept as perfect nodes, read through `node(level, i)`
/// (a database, say). `[start, end)` as the proofs ask for it: `start` a multiple of the
/// largest power of two below its length, so the range is whole perfect nodes, largest
/// first, folded from the right.
pub fn fold_perfect<E>(start: u64, end: u64, mut node: impl FnMut(u32, u64) -> Result<Hash, E>) -> Result<Hash, E> {
    let mut nodes = Vec::with_capacity(64);
    let mut at = start;
    while at < end {
        let level = 63 - (end - at).leading_zeros();
        debug_assert!(at.is_multiple_of(1 << level), "[{start}, {end}) is not made of perfect nodes");
        nodes.push(node(level, at >> level)?);
        at += 1 << level;
    }
    let Some(mut rest) = nodes.pop() else { return Ok(empty_root()) };
    while let Some(left) = nodes.pop() {
        rest = node_hash(&left, &rest);
    }
    Ok(rest)
}

/// The perfect nodes that leaf `index` (its hash `leaf`) completes, bottom-up, as
/// `(level, index, hash)`: what a log stores when it appends that leaf. `left(level, i)`
/// reads a stored node (the left siblings on the way up, all complete already).
pub fn completed_by<E>(
    index: u64,
    leaf: Hash,
    mut left: impl FnMut(u32, u64) -> Result<Hash, E>,
) -> Result<Vec<(u32, u64, Hash)>, E> {
    let mut out = vec![(0, index, leaf)];
    let (mut level, mut i, mut h) = (0u32, index, leaf);
    while i & 1 == 1 {
        h = node_hash(&left(level, i - 1)?, &h);
        level += 1;
        i >>= 1;
        out.push((level, i, h));
    }
    Ok(out)
}

/// The tree head of the first `size` leaves of a tree kept as perfect nodes.
pub fn stored_root<E>(size: u64, node: impl FnMut(u32, u64) -> Result<Hash, E>) -> Result<Hash, E> {
    fold_perfect(0, size, node)
}

/// The tree head of `leaves` (leaf hashes).
pub fn root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = split(n as u64) as usize;
            node_hash(&root(&leaves[..k]), &root(&leaves[k..]))
        }
    }
}

/// A tree head computed from leaves arriving one by one, in O(log n) memory: how a
/// verifier reading a log from the start checks the heads a checkpoint signs.
#[derive(Debug, Clone, Default)]
pub struct Frontier {
    size: u64,
    /// Heads of the perfect subtrees the leaves so far make, largest (leftmost) first.
    peaks: Vec<Hash>,
}

impl Frontier {
    pub fn push(&mut self, leaf: Hash) {
        let mut h = leaf;
        let mut n = self.size;
        while n & 1 == 1 {
            let left = self.peaks.pop().expect("a peak per set bit of the size");
            h = node_hash(&left, &h);
            n >>= 1;
        }
        self.peaks.push(h);
        self.size += 1;
    }

    /// Leaves pushed so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The head of the tree of the leaves pushed so far.
    pub fn root(&self) -> Hash {
        let mut it = self.peaks.iter().rev();
        let Some(last) = it.next() else { return empty_root() };
        it.fold(*last, |acc, left| node_hash(left, &acc))
    }
}

/// Why a proof does not hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("leaf {index} is not in a tree of {size} leaves")]
    IndexBeyondSize { index: u64, size: u64 },
    #[error("a consistency proof needs 0 < first size <= second size, not {first} and {second}")]
    Sizes { first: u64, second: u64 },
    #[error("the proof has {got} hashes; one for these sizes has {want}")]
    Length { got: usize, want: usize },
    #[error("the proof does not lead to the tree head it should")]
    Mismatch,
    #[error("the proof is for a tree of {proof} leaves, but the checkpoint signs one of {checkpoint}")]
    WrongSize { proof: u64, checkpoint: u64 },
}

/// The inclusion proof of leaf `index` in the tree of the first `size` leaves of `tree`:
/// RFC 6962's PATH(index, D[size]).
pub fn inclusion_proof<T: Subtrees + ?Sized>(tree: &T, index: u64, size: u64) -> Result<Vec<Hash>, ProofError> {
    if index >= size {
        return Err(ProofError::IndexBeyondSize { index, size });
    }
    let mut proof = Vec::new();
    path(tree, index, 0, size, &mut proof);
    Ok(proof)
}

/// PATH(m, D[start:end]), appended bottom-up.
fn path<T: Subtrees + ?Sized>(tree: &T, m: u64, start: u64, end: u64, proof: &mut Vec<Hash>) {
    let n = end - start;
    if n <= 1 {
        return;
    }
    let k = split(n);
    if m < k {
        path(tree, m, start, start + k, proof);
        proof.push(tree.subtree(start + k, end));
    } else {
        path(tree, m - k, start + k, end, proof);
        proof.push(tree.subtree(start, start + k));
    }
}

/// The consistency proof from the tree of the first `first` leaves of `tree` to that of
/// the first `second`: RFC 6962's PROOF(first, D[second]).
pub fn consistency_proof<T: Subtrees + ?Sized>(tree: &T, first: u64, second: u64) -> Result<Vec<Hash>, ProofError> {
    if first == 0 || first > second {
        return Err(ProofError::Sizes { first, second });
    }
    let mut proof = Vec::new();
    subproof(tree, first, 0, second, true, &mut proof);
    Ok(proof)
}

/// SUBPROOF(m, D[start:end], whole), appended bottom-up.
fn subproof<T: Subtrees + ?Sized>(tree: &T, m: u64, start: u64, end: u64, whole: bool, proof: &mut Vec<Hash>) {
    let n = end - start;
    if m == n {
        if !whole {
            proof.push(tree.subtree(start, end));
        }
        return;
    }
    let k = split(n);
    if m <= k {
        subproof(tree, m, start, start + k, whole, proof);
        proof.push(tree.subtree(start + k, end));
    } else {
        subproof(tree, m - k, start + k, end, false, proof);
        proof.push(tree.subtree(start, start + k));
    }
}

/// Checks that `leaf` (a leaf hash) is leaf `index` of the tree of `size` leaves whose
/// head is `root` (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(index: u64, size: u64, leaf: &Hash, proof: &[Hash], root: &Hash) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::IndexBeyondSize { index, size });
    }
    let want = inclusion_len(index, size);
    if proof.len() != want {
        return Err(ProofError::Length { got: proof.len(), want });
    }
    let (mut f, mut s) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if s == 0 {
            return Err(ProofError::Mismatch);
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 || !crate::ct_eq(&r, root) {
        return Err(ProofError::Mismatch);
    }
    Ok(())
}

/// The number of hashes in the inclusion proof of leaf `index` in a tree of `size`.
fn inclusion_len(index: u64, size: u64) -> usize {
    // The height where the paths to `index` and to the last leaf part, then one hash
    // per left sibling above it.
    let inner = 64 - (index ^ (size - 1)).leading_zeros();
    inner as usize + (index >> inner).count_ones() as usize
}

/// Checks that the tree of `second` leaves with head `second_root` extends the tree of
/// `first` leaves with head `first_root` (RFC 9162 §2.1.4.2). Both sizes must be
/// positive: nothing is consistent with the empty tree in a way worth proving.
pub fn verify_consistency(
    first: u64,
    second: u64,
    first_root: &Hash,
    second_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    if first == 0 || first > second {
        return Err(ProofError::Sizes { first, second });
    }
    if first == second {
        if !proof.is_empty() {
            return Err(ProofError::Length { got: proof.len(), want: 0 });
        }
        return if crate::ct_eq(first_root, second_root) { Ok(()) } else { Err(ProofError::Mismatch) };
    }
    // When `first` is a power of two its whole tree is a node of the second: the proof
    // starts above it, with `first_root` as its first hash.
    let mut path: Vec<&Hash> = Vec::with_capacity(proof.len() + 1);
    if first.is_power_of_two() {
        path.push(first_root);
    }
    path.extend(proof);
    let Some((&seed, rest)) = path.split_first() else {
        return Err(ProofError::Length { got: 0, want: 1 });
    };
    let (mut f, mut s) = (first - 1, second - 1);
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    let (mut fr, mut sr) = (*seed, *seed);
    for c in rest {
        if s == 0 {
            return Err(ProofError::Mismatch);
        }
        if f & 1 == 1 || f == s {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 || !crate::ct_eq(&fr, first_root) || !crate::ct_eq(&sr, second_root) {
        return Err(ProofError::Mismatch);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn leaves(n: u64) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect()
    }

    #[test]
    fn heads_of_small_trees_follow_the_definition() {
        assert_eq!(root(&[]), empty_root());
        let l = leaves(3);
        assert_eq!(root(&l[..1]), l[0]);
        assert_eq!(root(&l), node_hash(&node_hash(&l[0], &l[1]), &l[2]));
        assert_eq!(split(2), 1);
        assert_eq!(split(5), 4);
        assert_eq!(split(8), 4);
        assert_eq!(split(9), 8);
    }

    /// Perfect nodes in a map, filled as a log would fill them.
    #[derive(Default)]
    struct Nodes(std::collections::HashMap<(u32, u64), Hash>);

    impl PerfectNodes for Nodes {
        fn node(&self, level: u32, index: u64) -> Hash {
            self.0[&(level, index)]
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn a_tree_stored_as_perfect_nodes_gives_the_same_heads_and_proofs(size in 1u64..300, seed in any::<u64>()) {
            let l = leaves(size);
            let mut nodes = Nodes::default();
            let mut frontier = Frontier::default();
            for (i, leaf) in l.iter().enumerate() {
                let done = completed_by(i as u64, *leaf, |level, i| Ok::<_, ()>(nodes.node(level, i))).unwrap();
                for (level, index, h) in done {
                    prop_assert!(nodes.0.insert((level, index), h).is_none(), "a node written twice");
                }
                frontier.push(*leaf);
                prop_assert_eq!(frontier.root(), root(&l[..=i]));
            }
            prop_assert_eq!(Frontier::default().root(), empty_root());
            prop_assert!(nodes.0.len() < 2 * size as usize);
            for n in [1, size / 2 + 1, size] {
                prop_assert_eq!(stored_root(n, |level, i| Ok::<_, ()>(nodes.node(level, i))), Ok(root(&l[..n as usize])));
            }
            let index = seed % size;
            prop_assert_eq!(
                inclusion_proof(&Stored(&nodes), index, size).unwrap(),
                inclusion_proof(&l[..], index, size).unwrap()
            );
            let first = 1 + seed % size;
            prop_assert_eq!(
                consistency_proof(&Stored(&nodes), first, size).unwrap(),
                consistency_proof(&l[..], first, size).unwrap()
            );
        }

        #[test]
        fn every_inclusion_proof_holds_and_no_other_leaf_passes(size in 1u64..300, seed in any::<u64>()) {
            let l = leaves(size);
            let head = root(&l);
            let index = seed % size;
            let proof = inclusion_proof(&l[..], index, size).unwrap();
            prop_assert_eq!(proof.len(), inclusion_len(index, size));
            prop_assert!(verify_inclusion(index, size, &l[index as usize], &proof, &head).is_ok());
            let other = (index + 1) % size;
            if other != index {
                prop_assert!(verify_inclusion(index, size, &l[other as usize], &proof, &head).is_err());
                prop_assert!(verify_inclusion(other, size, &l[index as usize], &proof, &head).is_err());
            }
            if let Some(first) = proof.first() {
                let mut bad = proof.clone();
                bad[0] = node_hash(first, first);
                prop_assert!(verify_inclusion(index, size, &l[index as usize], &bad, &head).is_err());
            }
        }

        #[test]
        fn every_consistency_proof_holds_and_a_rewritten_history_fails(second in 1u64..300, seed in any::<u64>()) {
            let l = leaves(second);
            let first = 1 + seed % second;
            let proof = consistency_proof(&l[..], first, second).unwrap();
            let (r1, r2) = (root(&l[..first as usize]), root(&l));
            prop_assert!(verify_consistency(first, second, &r1, &r2, &proof).is_ok());
            // A first tree whose history differs from the second's.
            let mut forked = l[..first as usize].to_vec();
            forked[0] = leaf_hash(b"rewritten");
            prop_assert!(verify_consistency(first, second, &root(&forked), &r2, &proof).is_err());
            if first < second {
                prop_assert!(verify_consistency(first, second - 1, &r1, &root(&l[..second as usize - 1]), &proof).is_err());
            }
        }
    }
}
