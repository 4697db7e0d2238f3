//! Shamir secret sharing over GF(2^8), byte by byte: the arithmetic under domain-key backup
//! ([`crate::backup`]).
//!
//! Each byte `s` of the secret is the constant term of its own random polynomial
//! `f(x) = s + a1·x + … + a(M-1)·x^(M-1)` over GF(2^8) (the AES field, modulus
//! x^8 + x^4 + x^3 + x + 1), and share `i` (1..=N) holds `f(i)` for every byte. Any M shares give
//! back `f(0)` by Lagrange interpolation; fewer reveal nothing about it.
//!
//! **Constant time.** The usual implementation multiplies through log/exp tables, whose lookups
//! are indexed by secret bytes and so leak them through the cache. Here [`gf_mul`] is the
//! shift-and-add loop with the conditional parts done by masks (`0 - bit`), a fixed eight
//! rounds, and no branch or index that depends on a value; [`gf_inv`] is `a^254` (Fermat: the
//! multiplicative group has order 255) by a fixed chain of multiplications, which also maps 0 to
//! 0 without a branch. Only the share indexes (the x values, public) steer control flow. It is
//! slower than tables, and irrelevant: a backup splits a few hundred bytes.

use zeroize::Zeroizing;

use crate::{Error, Result};

/// Multiplies in GF(2^8) modulo x^8 + x^4 + x^3 + x + 1, in constant time.
pub(crate) fn gf_mul(a: u8, b: u8) -> u8 {
    let (mut a, mut b, mut product) = (a, b, 0u8);
    for _ in 0..8 {
        // All ones if the low bit of `b` is set, else zero: adds `a` without a branch.
        product ^= a & 0u8.wrapping_sub(b & 1);
        // All ones if `a`'s top bit is set: reduces by the modulus without a branch.
        let carry = 0u8.wrapping_sub(a >> 7);
        a = (a << 1) ^ (0x1b & carry);
        b >>= 1;
    }
    product
}

/// The multiplicative inverse in GF(2^8), `a^254`, in constant time; `gf_inv(0) == 0`.
pub(crate) fn gf_inv(a: u8) -> u8 {
    // 254 = 2 + 4 + 8 + … + 128, so a^254 is the product of the seven squares a^2, a^4, …,
    // a^128: a fixed sequence of multiplications, whatever `a` is.
    let (mut square, mut result) = (a, 1u8);
    for _ in 0..7 {
        square = gf_mul(square, square);
        result = gf_mul(result, square);
    }
    result
}

/// Splits `secret` into `total` shares, any `threshold` of which recover it. Share `i` (0-based
/// in the result) is the evaluation at x = i + 1, as long as the secret.
pub(crate) fn split(
    secret: &[u8],
    threshold: u8,
    total: u8,
) -> Result<Vec<(u8, Zeroizing<Vec<u8>>)>> {
    split_with(secret, threshold, total, &mut crate::rand::fill)
}

/// [`split`] with the randomness given: `fill` fills the `(threshold - 1) × len` coefficient
/// buffer, laid out per secret byte (byte 0's a1..a(M-1), then byte 1's, …). Only the
/// known-answer tests pass anything but the CSPRNG.
pub(crate) fn split_with(
    secret: &[u8],
    threshold: u8,
    total: u8,
    fill: &mut dyn FnMut(&mut [u8]) -> Result<()>,
) -> Result<Vec<(u8, Zeroizing<Vec<u8>>)>> {
    if threshold == 0 || threshold > total {
        return Err(Error::InvalidInput(
            "the threshold must be between 1 and the number of shares",
        ));
    }
    let degree = usize::from(threshold - 1);
    let mut coefficients = Zeroizing::new(vec![0u8; degree * secret.len()]);
    fill(&mut coefficients)?;
    let mut shares = Vec::with_capacity(usize::from(total));
    for x in 1..=total {
        let mut value = Zeroizing::new(Vec::with_capacity(secret.len()));
        for (i, &s) in secret.iter().enumerate() {
            let coeffs = &coefficients[i * degree..(i + 1) * degree];
            // Horner from the highest coefficient down to the constant term.
            let mut y = 0u8;
            for &c in coeffs.iter().rev() {
                y = gf_mul(y, x) ^ c;
            }
            value.push(gf_mul(y, x) ^ s);
        }
        shares.push((x, value));
    }
    Ok(shares)
}

/// Recovers the secret from shares `(x, f(x))` by Lagrange interpolation at 0. The caller checks
/// the count against the threshold: with too few shares this returns a wrong secret, which only
/// an integrity check can notice. Refuses x = 0, repeated x and values of different lengths.
pub(crate) fn combine(shares: &[(u8, &[u8])]) -> Result<Zeroizing<Vec<u8>>> {
    let Some(&(_, first)) = shares.first() else {
        return Err(Error::InvalidInput("no shares"));
    };
    let len = first.len();
    for (i, &(x, value)) in shares.iter().enumerate() {
        if x == 0 {
            return Err(Error::InvalidInput("a share has index 0"));
        }
        if value.len() != len {
            return Err(Error::InvalidInput("shares have different lengths"));
        }
        if shares[..i].iter().any(|&(other, _)| other == x) {
            return Err(Error::InvalidInput("two shares have the same index"));
        }
    }
    // The Lagrange basis at 0 depends only on the (public) indexes: l_i = Π_{j≠i} x_j / (x_j − x_i),
    // and subtraction is XOR in GF(2^8).
    let basis: Vec<u8> = shares
        .iter()
        .map(|&(xi, _)| {
            shares
                .iter()
                .filter(|&&(xj, _)| xj != xi)
                .fold(1u8, |acc, &(xj, _)| {
                    gf_mul(acc, gf_mul(xj, gf_inv(xj ^ xi)))
                })
        })
        .collect();
    let mut secret = Zeroizing::new(vec![0u8; len]);
    for (&(_, value), &l) in shares.iter().zip(&basis) {
        for (s, &y) in secret.iter_mut().zip(value) {
            *s ^= gf_mul(y, l);
        }
    }
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// The textbook multiply, with branches: a reference for [`gf_mul`].
    fn slow_mul(mut a: u8, mut b: u8) -> u8 {
        let mut p = 0u8;
        while b != 0 {
            if b & 1 == 1 {
                p ^= a;
            }
            let hi = a & 0x80 != 0;
            a <<= 1;
            if hi {
                a ^= 0x1b;
            }
            b >>= 1;
        }
        p
    }

    #[test]
    fn multiplication_known_answers_from_fips_197() {
        // FIPS 197 §4.2: {57}·{83} = {c1}, {57}·{13} = {fe}; §4.4: {53}⁻¹ = {ca}.
        assert_eq!(gf_mul(0x57, 0x83), 0xc1);
        assert_eq!(gf_mul(0x57, 0x13), 0xfe);
        assert_eq!(gf_mul(0x53, 0xca), 0x01);
        assert_eq!(gf_inv(0x53), 0xca);
        assert_eq!(gf_inv(0), 0);
        assert_eq!(gf_inv(1), 1);
    }

    #[test]
    fn multiplication_table_is_a_commutative_field_product() {
        for a in 0..=255u8 {
            assert_eq!(gf_mul(a, 0), 0);
            assert_eq!(gf_mul(a, 1), a);
            for b in 0..=255u8 {
                let p = gf_mul(a, b);
                assert_eq!(p, slow_mul(a, b), "{a:02x}·{b:02x}");
                assert_eq!(p, gf_mul(b, a));
            }
        }
        // Distributive and associative on a sample (the full cube is 16M products).
        for a in (0..=255u8).step_by(7) {
            for b in (0..=255u8).step_by(11) {
                for c in (0..=255u8).step_by(13) {
                    assert_eq!(gf_mul(a, b ^ c), gf_mul(a, b) ^ gf_mul(a, c));
                    assert_eq!(gf_mul(gf_mul(a, b), c), gf_mul(a, gf_mul(b, c)));
                }
            }
        }
    }

    #[test]
    fn every_non_zero_element_has_its_inverse() {
        for a in 1..=255u8 {
            let inv = gf_inv(a);
            assert_eq!(gf_mul(a, inv), 1, "{a:02x}");
            assert_eq!(gf_inv(inv), a);
        }
    }

    /// Fixed coefficients, values worked by hand: f(x) = 53 + ca·x + 57·x² (hex) and
    /// g(x) = 01 + 02·x.
    #[test]
    fn polynomial_evaluation_known_answer() {
        let mut fixed = |buf: &mut [u8]| {
            buf.copy_from_slice(&[0xca, 0x57, 0x02, 0x00]);
            Ok(())
        };
        let shares = split_with(&[0x53, 0x01], 3, 3, &mut fixed).unwrap();
        let got: Vec<(u8, Vec<u8>)> = shares.iter().map(|(x, v)| (*x, v.to_vec())).collect();
        // f(1) = 53 ^ ca ^ 57 = ce; f(2) = 53 ^ ca·2 (8f) ^ 57·4 (47) = 9b; 3² = 5 in GF(2^8),
        // so f(3) = 53 ^ ca·3 (8f ^ ca = 45) ^ 57·5 (47 ^ 57 = 10) = 06.
        // g(1) = 03; g(2) = 05; g(3) = 07.
        assert_eq!(
            got,
            vec![
                (1, vec![0xce, 0x03]),
                (2, vec![0x9b, 0x05]),
                (3, vec![0x06, 0x07])
            ]
        );
        let back = combine(&[(1, &got[0].1), (2, &got[1].1), (3, &got[2].1)]).unwrap();
        assert_eq!(back.as_slice(), &[0x53, 0x01]);
    }

    #[test]
    fn thresholds_out_of_range_are_refused() {
        assert!(split(b"s", 0, 3).is_err());
        assert!(split(b"s", 4, 3).is_err());
        assert!(split(b"s", 0, 0).is_err());
        assert!(split(b"s", 1, 1).is_ok());
        assert!(split(b"s", 255, 255).is_ok());
    }

    #[test]
    fn combine_refuses_bad_share_sets() {
        assert!(combine(&[]).is_err());
        assert!(combine(&[(0, b"a")]).is_err());
        assert!(combine(&[(1, b"a"), (1, b"a")]).is_err());
        assert!(combine(&[(1, b"a"), (2, b"ab")]).is_err());
    }

    #[test]
    fn one_of_one_share_is_the_secret() {
        let shares = split(b"secret", 1, 1).unwrap();
        assert_eq!(shares[0].1.as_slice(), b"secret");
    }

    proptest! {
        #[test]
        fn any_threshold_subset_recovers(
            secret in proptest::collection::vec(any::<u8>(), 0..64),
            total in 1u8..=8,
            threshold_seed in any::<u8>(),
            pick_seed in any::<u64>(),
        ) {
            let threshold = threshold_seed % total + 1;
            let shares = split(&secret, threshold, total).unwrap();
            // A pseudo-random subset of exactly `threshold` shares.
            let mut order: Vec<usize> = (0..usize::from(total)).collect();
            let mut seed = pick_seed;
            for i in (1..order.len()).rev() {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                order.swap(i, (seed >> 33) as usize % (i + 1));
            }
            let chosen: Vec<(u8, &[u8])> = order[..usize::from(threshold)]
                .iter()
                .map(|&i| (shares[i].0, shares[i].1.as_slice()))
                .collect();
            let back = combine(&chosen).unwrap();
            prop_assert_eq!(back.as_slice(), secret.as_slice());
        }

        #[test]
        fn combine_never_panics(shares in proptest::collection::vec(
            (any::<u8>(), proptest::collection::vec(any::<u8>(), 0..8)), 0..6)
        ) {
            let refs: Vec<(u8, &[u8])> = shares.iter().map(|(x, v)| (*x, v.as_slice())).collect();
            let _ = combine(&refs);
        }
    }
}
