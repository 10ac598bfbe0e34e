//! Real QEMU 7.2 accepts noc-sim's ivshmem handshake.
//!
//! Starts noc-sim with two clusters and one `ivshmem-doorbell` QEMU per
//! cluster (paused with `-S`: the handshake happens while the device is
//! realized, before any guest code runs), checks that both joined and that
//! neither QEMU exited with an error. Skipped when qemu-system-x86_64 is not
//! installed.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{cluster_stat, Sim};

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn qemu_accepts_handshake() {
    let qemu = "qemu-system-x86_64";
    if Command::new(qemu)
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_err()
    {
        eprintln!("skipping: {qemu} not found");
        return;
    }
    let sim = Sim::start(2, &[]);
    let mut qemus = Vec::new();
    for k in 0..2 {
        let sock = sim.sock(k);
        let child = Command::new(qemu)
            .args([
                "-display",
                "none",
                "-nodefaults",
                "-machine",
                "q35",
                "-m",
                "64",
                "-S",
            ])
            .arg("-chardev")
            .arg(format!("socket,path={},id=noc", sock.display()))
            .args(["-device", "ivshmem-doorbell,chardev=noc,vectors=1"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn qemu");
        qemus.push(KillOnDrop(child));
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let stats = sim.control("stats");
        if (0..2).all(|k| stats.contains(&format!("{{\"id\":{k},\"live\":true"))) {
            break;
        }
        for q in &mut qemus {
            if let Some(st) = q.0.try_wait().unwrap() {
                let mut err = String::new();
                use std::io::Read;
                let _ = q.0.stderr.take().unwrap().read_to_string(&mut err);
                panic!("QEMU exited early ({st}): {err}\nnoc-sim:\n{}", sim.log());
            }
        }
        assert!(
            Instant::now() < deadline,
            "QEMUs did not join:\n{}",
            sim.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Give QEMU a moment to process the post-setup messages (its own vectors)
    // and make sure it is still happy.
    std::thread::sleep(Duration::from_millis(300));
    for q in &mut qemus {
        assert!(
            q.0.try_wait().unwrap().is_none(),
            "QEMU exited after the handshake"
        );
    }
    let stats = sim.control("stats");
    assert_eq!(cluster_stat(&stats, 0, "dropped_corrupt"), 0);
    assert!(
        sim.log().contains("all 2 clusters joined in"),
        "{}",
        sim.log()
    );
}
