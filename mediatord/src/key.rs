//! The node key file `mediator.key`: 64 raw bytes in Go's ed25519 format (seed ‖ public key),
//! mode 0600, generated on first start and never overwritten. The key files of the Rust
//! mediator for Mimir 3.x are read as they are too (`docs/mimir3.md` §5, risk 8): the 32-byte
//! raw seed, and the seed as 64 hex digits (a trailing newline allowed). A file is never
//! rewritten into another format.

use anyhow::{bail, Context, Result};
use ed25519_dalek::SigningKey;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Size of the key file mediatord writes (Go's format).
pub const KEY_FILE_LEN: usize = 64;
/// Size of a key file holding only the 32-byte seed (the Rust mediator's raw format).
pub const SEED_FILE_LEN: usize = 32;

/// Loads the key, or creates it if the file does not exist. A file that exists but is not a
/// valid key is an error: it is never replaced.
pub fn load_or_create(path: &Path) -> Result<SigningKey> {
    match std::fs::read(path) {
        Ok(bytes) => parse(&bytes).with_context(|| format!("invalid key file {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = SigningKey::generate(&mut rand::rngs::OsRng);
            let mut bytes = [0u8; KEY_FILE_LEN];
            bytes[..32].copy_from_slice(&key.to_bytes());
            bytes[32..].copy_from_slice(key.verifying_key().as_bytes());
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .with_context(|| format!("creating key file {}", path.display()))?;
            f.write_all(&bytes)
                .and_then(|_| f.sync_all())
                .with_context(|| format!("writing key file {}", path.display()))?;
            tracing::info!(path = %path.display(), "generated a new node key");
            Ok(key)
        }
        Err(e) => Err(e).with_context(|| format!("reading key file {}", path.display())),
    }
}

fn parse(bytes: &[u8]) -> Result<SigningKey> {
    if bytes.len() == SEED_FILE_LEN {
        let seed: [u8; 32] = bytes.try_into().expect("length checked");
        return Ok(SigningKey::from_bytes(&seed));
    }
    // Go's format first: 64 bytes whose second half is the seed's public key (64 hex digits
    // are also 64 bytes, but never such a pair).
    if let Some((seed, public)) = bytes
        .split_first_chunk::<32>()
        .filter(|_| bytes.len() == KEY_FILE_LEN)
    {
        let key = SigningKey::from_bytes(seed);
        if key.verifying_key().as_bytes() == public {
            return Ok(key);
        }
    }
    let text = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    let text = text.strip_suffix(b"\r").unwrap_or(text);
    if text.len() == 2 * SEED_FILE_LEN && text.iter().all(u8::is_ascii_hexdigit) {
        let mut seed = [0u8; 32];
        hex::decode_to_slice(text, &mut seed).context("hex key")?;
        return Ok(SigningKey::from_bytes(&seed));
    }
    if bytes.len() != KEY_FILE_LEN {
        bail!(
            "expected {KEY_FILE_LEN} bytes (ed25519 seed and public key), {SEED_FILE_LEN} bytes \
             (seed) or 64 hex digits (seed), found {} bytes",
            bytes.len()
        );
    }
    let seed: [u8; 32] = bytes[..32].try_into().expect("length checked");
    let key = SigningKey::from_bytes(&seed);
    if key.verifying_key().as_bytes() != &bytes[32..] {
        bail!("the public key half does not match the seed");
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generate_then_reload_and_reject_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("mediator.key");
        let k1 = load_or_create(&p).unwrap();
        let k2 = load_or_create(&p).unwrap();
        assert_eq!(k1.to_bytes(), k2.to_bytes());
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        std::fs::write(&p, [1u8; 10]).unwrap();
        assert!(load_or_create(&p).is_err());
        let mut bad = [0u8; 64];
        bad[..32].copy_from_slice(&k1.to_bytes());
        std::fs::write(&p, bad).unwrap();
        assert!(load_or_create(&p).is_err());
        assert_eq!(std::fs::read(&p).unwrap(), bad, "never overwritten");
    }

    /// The Rust mediator's formats give the same key as Go's, and stay as they are.
    #[test]
    fn seed_files_raw_and_hex_are_read_as_they_are() {
        let dir = tempfile::tempdir().unwrap();
        let go = dir.path().join("go.key");
        let key = load_or_create(&go).unwrap();
        let seed = key.to_bytes();
        let forms: [(&str, Vec<u8>); 4] = [
            ("raw", seed.to_vec()),
            ("hex", hex::encode(seed).into_bytes()),
            (
                "hex-newline",
                format!("{}\n", hex::encode(seed)).into_bytes(),
            ),
            (
                "HEX-crlf",
                format!("{}\r\n", hex::encode_upper(seed)).into_bytes(),
            ),
        ];
        for (name, bytes) in forms {
            let p = dir.path().join(name);
            std::fs::write(&p, &bytes).unwrap();
            let k = load_or_create(&p).unwrap_or_else(|e| panic!("{name}: {e:#}"));
            assert_eq!(k.to_bytes(), seed, "{name}");
            assert_eq!(std::fs::read(&p).unwrap(), bytes, "{name} rewritten");
        }
        // 64 characters that are not all hex digits are not a key.
        let p = dir.path().join("nothex");
        std::fs::write(&p, [b'g'; 64]).unwrap();
        assert!(load_or_create(&p).is_err());
    }
}
