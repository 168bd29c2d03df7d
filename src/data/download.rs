//! HTTPS downloads that are verified before use and never leave a partial file in place.

use anyhow::{Context, Result, anyhow, bail};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

fn agent() -> ureq::Agent {
    let config = ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(20)))
        .timeout_recv_body(Some(Duration::from_secs(60)))
        // The system's trust store, so that a site-installed CA (a proxy) is honoured.
        .tls_config(ureq::tls::TlsConfig::builder().root_certs(ureq::tls::RootCerts::PlatformVerifier).build())
        .build();
    ureq::Agent::new_with_config(config)
}

/// Hex sha256 of a file.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).with_context(|| format!("{}: cannot open", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).with_context(|| format!("{}: cannot read", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Downloads `url` to `dest`, showing progress. When `sha256` is given the bytes are checked
/// while they stream, and `dest` appears only if they match.
pub fn download(url: &str, dest: &Path, sha256: Option<&str>, what: &str) -> Result<()> {
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("{}: cannot create directory", parent.display()))?;
    }
    let response = agent().get(url).call().map_err(|e| anyhow!("cannot download {url}: {e}"))?;
    let total =
        response.headers().get("content-length").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    let mut reader = response.into_body().into_reader();
    // An unknown length shows as 0 until the end: the count of bytes still moves.
    let phase = crate::util::progress::background().phase(what, total.unwrap_or(0), crate::util::progress::Unit::Bytes);
    let mut done = 0u64;
    let tmp = crate::util::fs::temp_sibling(dest);
    let result = (|| -> Result<String> {
        let mut out = std::fs::File::create(&tmp).with_context(|| format!("{}: cannot create", tmp.display()))?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = reader.read(&mut buf).map_err(|e| anyhow!("download of {url} broke off: {e}"))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n]).with_context(|| format!("{}: cannot write", tmp.display()))?;
            done += n as u64;
            phase.set(done);
        }
        out.sync_all().with_context(|| format!("{}: cannot write", tmp.display()))?;
        Ok(hex(&hasher.finalize()))
    })();
    drop(phase);
    let digest = match result {
        Ok(d) => d,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    if let Some(expected) = sha256
        && digest != expected
    {
        let _ = std::fs::remove_file(&tmp);
        bail!("{url}: sha256 mismatch (got {digest}, expected {expected}); file discarded");
    }
    std::fs::rename(&tmp, dest).with_context(|| format!("{}: cannot move into place", dest.display()))
}
