//! The node key file `mediator.key`: 64 raw bytes in Go's ed25519 format (seed ‖ public key),
//! mode 0600, generated on first start and never overwritten.

use anyhow::{bail, Context, Result};
use ed25519_dalek::SigningKey;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Size of the key file.
pub const KEY_FILE_LEN: usize = 64;

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
    if bytes.len() != KEY_FILE_LEN {
        bail!(
            "expected {KEY_FILE_LEN} bytes (ed25519 seed and public key), found {}",
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
}
