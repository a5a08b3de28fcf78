//! The management plane: one thread with a small tokio runtime that serves the control
//! socket (`gkctl apply`, `confirm`, `status`), watches the inbox for bundles (on the
//! box, where USB sticks are scanned) and ticks the lifecycle (confirmation windows,
//! health checks). It never touches the packet path: policies reach the forwarding
//! thread through the [`gk_dataplane::bridge::Handoff`].

use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tracing::{error, info, warn};

use crate::lifecycle::{Answer, Lifecycle, Source};

/// The largest bundle read from the inbox or accepted on the control socket (the
/// bundle format's own limit is checked again by verification).
const MAX_BUNDLE: u64 = 1 << 20;
/// The longest request line on the control socket (a base64 bundle and some JSON).
const MAX_REQUEST: usize = (MAX_BUNDLE as usize) * 4 / 3 + 4096;

pub struct Management {
    pub lifecycle: Lifecycle,
    pub control: Option<PathBuf>,
    pub inbox: Option<PathBuf>,
    /// `--bundle FILE`: offered once at start.
    pub bundle: Option<PathBuf>,
}

/// Runs the management plane on its own thread until `stop` is set.
pub fn spawn(m: Management, stop: Arc<AtomicBool>) -> anyhow::Result<std::thread::JoinHandle<()>> {
    let handle = std::thread::Builder::new()
        .name("gk-management".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    error!("cannot start the management plane: {e}");
                    return;
                }
            };
            runtime.block_on(run(m, stop));
        })?;
    Ok(handle)
}

async fn run(m: Management, stop: Arc<AtomicBool>) {
    let lifecycle = Arc::new(Mutex::new(m.lifecycle));
    if let Some(path) = &m.bundle {
        let answer = match read_bundle(path) {
            Ok(bytes) => lock(&lifecycle).offer(&bytes, Source::new("bundle", file_name(path))),
            Err(e) => Answer {
                ok: false,
                code: "unreadable".into(),
                message: e,
            },
        };
        report_offer(path, &answer);
    }
    let listener = match &m.control {
        Some(path) => match bind(path) {
            Ok(l) => Some(l),
            Err(e) => {
                error!("control socket {}: {e}", path.display());
                None
            }
        },
        None => None,
    };
    let mut seen: HashSet<(String, u64, i64)> = HashSet::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                if let Some(dir) = &m.inbox {
                    scan_inbox(dir, &mut seen, &lifecycle);
                }
                lock(&lifecycle).tick();
            }
            accepted = accept(listener.as_ref()) => {
                if let Ok(stream) = accepted {
                    let lc = lifecycle.clone();
                    tokio::spawn(async move { serve(stream, lc).await });
                }
            }
        }
    }
    if let Some(path) = &m.control {
        let _ = std::fs::remove_file(path);
    }
}

fn lock(lc: &Arc<Mutex<Lifecycle>>) -> std::sync::MutexGuard<'_, Lifecycle> {
    lc.lock().unwrap_or_else(|e| e.into_inner())
}

fn file_name(path: &Path) -> Option<String> {
    path.file_name().map(|n| n.to_string_lossy().into_owned())
}

fn report_offer(path: &Path, answer: &Answer) {
    if answer.ok {
        info!("{}: {}", path.display(), answer.message);
    } else {
        warn!(
            "{}: refused ({}): {}",
            path.display(),
            answer.code,
            answer.message
        );
        eprintln!(
            "gatekeeperd: bundle {} refused ({}): {}",
            path.display(),
            answer.code,
            answer.message
        );
    }
}

/// Reads a bundle file, refusing what is too large before reading it all.
fn read_bundle(path: &Path) -> Result<Vec<u8>, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot open: {e}"))?;
    let mut bytes = Vec::new();
    file.take(MAX_BUNDLE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read: {e}"))?;
    Ok(bytes)
}

/// Offers every `*.gkb` file of the inbox not seen before (by name, size and time).
fn scan_inbox(dir: &Path, seen: &mut HashSet<(String, u64, i64)>, lc: &Arc<Mutex<Lifecycle>>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut found: Vec<(PathBuf, (String, u64, i64))> = entries
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "gkb"))
        .filter_map(|e| {
            let meta = e.metadata().ok()?;
            let mtime = meta
                .modified()
                .ok()?
                .duration_since(std::time::UNIX_EPOCH)
                .ok()?
                .as_nanos() as i64;
            let name = e.file_name().to_string_lossy().into_owned();
            Some((e.path(), (name, meta.len(), mtime)))
        })
        .filter(|(_, key)| !seen.contains(key))
        .collect();
    // Oldest first, so that a stick with several serials is applied in order.
    found.sort_by_key(|(_, (_, _, mtime))| *mtime);
    for (path, key) in found {
        seen.insert(key);
        let answer = match read_bundle(&path) {
            Ok(bytes) => lock(lc).offer(&bytes, Source::new("inbox", file_name(&path))),
            Err(e) => Answer {
                ok: false,
                code: "unreadable".into(),
                message: e,
            },
        };
        report_offer(&path, &answer);
    }
}

fn bind(path: &Path) -> std::io::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    // A socket left by a previous run (not a file of anybody else's).
    if std::fs::symlink_metadata(path).is_ok_and(|m| {
        use std::os::unix::fs::FileTypeExt;
        m.file_type().is_socket()
    }) {
        std::fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    info!("control socket {}", path.display());
    Ok(listener)
}

async fn accept(listener: Option<&UnixListener>) -> std::io::Result<UnixStream> {
    match listener {
        Some(l) => l.accept().await.map(|(s, _)| s),
        None => std::future::pending().await,
    }
}

/// One client: JSON requests, one per line; one JSON answer per line.
async fn serve(stream: UnixStream, lc: Arc<Mutex<Lifecycle>>) {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    let mut line = String::new();
    loop {
        line.clear();
        match (&mut lines)
            .take(MAX_REQUEST as u64)
            .read_line(&mut line)
            .await
        {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let answer = if !line.ends_with('\n') {
            json!({"ok": false, "code": "too-large", "message": "request too long"})
        } else {
            handle(line.trim_end(), &lc)
        };
        let mut out = answer.to_string();
        out.push('\n');
        if write.write_all(out.as_bytes()).await.is_err() {
            return;
        }
    }
}

fn handle(line: &str, lc: &Arc<Mutex<Lifecycle>>) -> serde_json::Value {
    let request: serde_json::Value = match serde_json::from_str(line) {
        Ok(v) => v,
        Err(e) => {
            return json!({"ok": false, "code": "bad-request", "message": format!("not JSON: {e}")})
        }
    };
    let answer = |a: Answer| json!({"ok": a.ok, "code": a.code, "message": a.message});
    match request["command"].as_str() {
        Some("apply") => {
            let Some(b64) = request["bundle"].as_str() else {
                return json!({"ok": false, "code": "bad-request", "message": "apply needs \"bundle\" (base64)"});
            };
            let bytes = match base64::engine::general_purpose::STANDARD.decode(b64) {
                Ok(b) => b,
                Err(e) => {
                    return json!({"ok": false, "code": "bad-request", "message": format!("bundle is not base64: {e}")})
                }
            };
            let name = request["name"].as_str().map(str::to_string);
            // Answered once the forwarding thread runs it (`offer` waits).
            answer(lock(lc).offer(&bytes, Source::new("control", name)))
        }
        Some("confirm") => answer(lock(lc).confirm("the operator confirmed it (gkctl confirm)")),
        Some("status") => {
            let status = lock(lc).status();
            json!({"ok": true, "code": "status", "status": status})
        }
        Some(other) => {
            json!({"ok": false, "code": "bad-request", "message": format!("unknown command {other:?} (apply, confirm, status)")})
        }
        None => json!({"ok": false, "code": "bad-request", "message": "missing \"command\""}),
    }
}
