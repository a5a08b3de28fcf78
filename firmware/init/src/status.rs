//! The status line on the console, from gatekeeperd's control socket
//! (`{"command":"status"}` → one JSON line; see `firmware/gatekeeperd/src/management.rs`).

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// What the console says about gatekeeperd's state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// The policy's mode (`enforce`, `monitor`, …), when one runs.
    pub mode: Option<String>,
    /// The serial of the bundle in force.
    pub serial: Option<u64>,
    /// The serial of a pending (not yet confirmed) bundle.
    pub pending: Option<u64>,
    /// `factory_default` as gatekeeperd reports it (`--factory-monitor`).
    pub factory_default: Option<bool>,
    /// The failure mode in force when no bundle runs.
    pub failure_mode: Option<String>,
}

impl Summary {
    /// Reads the fields we show from a status answer (`{"ok":true,"status":{…}}`).
    pub fn from_answer(answer: &serde_json::Value) -> Option<Summary> {
        if answer.get("ok")?.as_bool() != Some(true) {
            return None;
        }
        let s = answer.get("status")?;
        let serial = |v: Option<&serde_json::Value>| {
            v.and_then(|b| b.get("serial")).and_then(|x| x.as_u64())
        };
        Some(Summary {
            mode: s.get("mode").and_then(|m| m.as_str()).map(str::to_string),
            serial: serial(s.get("current")),
            pending: serial(s.get("pending").and_then(|p| p.get("bundle"))),
            factory_default: s.get("factory_default").and_then(|f| f.as_bool()),
            failure_mode: s
                .get("failure_mode")
                .and_then(|m| m.as_str())
                .map(str::to_string),
        })
    }

    /// `mode=enforce bundle=12 pending=none factory-default=no`.
    pub fn render(&self) -> String {
        let opt = |v: &Option<u64>| v.map_or("none".to_string(), |s| s.to_string());
        let mut out = format!(
            "mode={} bundle={} pending={} factory-default={}",
            self.mode.as_deref().unwrap_or("none"),
            opt(&self.serial),
            opt(&self.pending),
            match self.factory_default {
                Some(true) => "yes",
                Some(false) => "no",
                None => "unknown",
            }
        );
        if let Some(f) = &self.failure_mode {
            out.push_str(&format!(" failure-mode={f}"));
        }
        out
    }
}

/// Asks gatekeeperd for its status (at most `timeout` in total; the answer is small).
pub fn query(socket: &Path, timeout: Duration) -> io::Result<serde_json::Value> {
    let mut s = UnixStream::connect(socket)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    s.write_all(b"{\"command\":\"status\"}\n")?;
    let mut line = String::new();
    BufReader::new(s.take(1 << 20)).read_line(&mut line)?;
    serde_json::from_str(&line).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn summarises_a_status_answer() {
        let a = json!({"ok": true, "code": "status", "status": {
            "mode": "enforce", "current": {"serial": 12}, "pending": {"bundle": {"serial": 13}},
            "factory_default": false, "failure_mode": null}});
        let s = Summary::from_answer(&a).expect("ok");
        assert_eq!(
            s.render(),
            "mode=enforce bundle=12 pending=13 factory-default=no"
        );
        let a = json!({"ok": true, "status": {"mode": "monitor", "current": null,
            "factory_default": true, "failure_mode": "fail-closed"}});
        assert_eq!(
            Summary::from_answer(&a).expect("ok").render(),
            "mode=monitor bundle=none pending=none factory-default=yes failure-mode=fail-closed"
        );
        assert_eq!(Summary::from_answer(&json!({"ok": false})), None);
    }

    #[test]
    fn queries_a_socket() {
        let dir = crate::sysfs::fake::Tmp::new("sock");
        let path = dir.0.join("control.sock");
        let l = std::os::unix::net::UnixListener::bind(&path).expect("bind");
        let t = std::thread::spawn(move || {
            let (s, _) = l.accept().expect("accept");
            let mut r = BufReader::new(s.try_clone().expect("clone"));
            let mut req = String::new();
            r.read_line(&mut req).expect("read");
            assert_eq!(req, "{\"command\":\"status\"}\n");
            (&s).write_all(b"{\"ok\":true,\"status\":{\"mode\":\"monitor\"}}\n")
                .expect("write");
        });
        let v = query(&path, Duration::from_secs(2)).expect("answer");
        t.join().expect("server");
        assert_eq!(
            Summary::from_answer(&v).and_then(|s| s.mode).as_deref(),
            Some("monitor")
        );
    }
}
