//! The interposer in real programs: python3 started with `LD_PRELOAD` opens
//! `/dev/input/js0` (which does not exist here), asks its ioctls and reads the records the
//! hub writes; a C program (`c/evdev_reader.c`, built here with `cc`) does the same with
//! `/dev/input/event1000` as SDL2 or libevdev would, and plays a rumble effect that arrives at
//! the hub's sink; another (`c/devfs_lister.c`) finds the pads by listing `/dev/input` and
//! stat()ing the nodes, as SDL2 and Steam do, and lists real directories as they are.

use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kelpie_gamepad::{Backend, Gamepads, Rumble};

const READER: &str = r#"
import fcntl, os, struct, array
fd = os.open('/dev/input/js0', os.O_RDONLY)
n = array.array('B', [0])
fcntl.ioctl(fd, 0x80016a11, n)  # JSIOCGAXES
b = array.array('B', [0])
fcntl.ioctl(fd, 0x80016a12, b)  # JSIOCGBUTTONS
name = bytearray(64)
fcntl.ioctl(fd, 0x80406a13, name)  # JSIOCGNAME(64)
print('axes', n[0], 'buttons', b[0], 'name', name.split(b'\0')[0].decode())
for _ in range(19 + 3):
    t, v, ty, num = struct.unpack('IhBB', os.read(fd, 8))
    print(ty, num, v)
os.close(fd)
try:
    os.open('/dev/input/js7', os.O_RDONLY)
except OSError as e:
    print('js7', e.errno)
"#;

#[test]
fn a_program_reads_the_pad_through_the_interposer() {
    let dir = std::env::temp_dir().join(format!("kelpie-gamepad-it-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let g = Gamepads::start(&dir, Backend::Interposer).unwrap();
    g.set(1, 0, &[0, 32767], &[]);
    let child = Command::new("python3")
        .args(["-c", READER])
        .envs(g.env())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 is installed (scripts/install-deps.sh)");
    // Changes after the program connected arrive as events.
    let mut connected = false;
    for _ in 0..500 {
        if g.counters().readers.load(std::sync::atomic::Ordering::Relaxed) == 1 {
            connected = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(connected, "python3 never opened /dev/input/js0 through the interposer");
    g.set(1, 0, &[32767, 0], &[-32767]);
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "axes 8 buttons 11 name Kelpie virtual gamepad (Xbox 360 layout)");
    assert_eq!(lines[1], "129 0 0", "init: A up");
    assert_eq!(lines[2], "129 1 1", "init: B down");
    assert_eq!(lines[1 + 11 + 2], "130 2 -32767", "init: left trigger released");
    assert_eq!(&lines[20..22], ["1 0 1", "1 1 0"], "then A down and B up");
    assert_eq!(lines[22], "2 0 -32767", "and the left stick hard left");
    assert_eq!(lines[23], "js7 2", "a pad beyond the four is not there (ENOENT)");
    let _ = std::fs::remove_dir_all(&dir);
}

fn wait_readers(g: &Gamepads, n: u64, what: &str) {
    for _ in 0..500 {
        if g.counters().readers.load(Ordering::Relaxed) == n {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("{what} never opened the pad through the interposer");
}

#[test]
fn an_evdev_reader_gets_input_events_and_its_rumble_reaches_the_hub() {
    let dir = std::env::temp_dir().join(format!("kelpie-gamepad-ev-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let exe = dir.join("evdev_reader");
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/c/evdev_reader.c");
    let built = Command::new("cc")
        .args(["-std=gnu11", "-Wall", "-Werror", "-o"])
        .arg(&exe)
        .arg(src)
        .status()
        .expect("cc is installed (scripts/install-deps.sh)");
    assert!(built.success(), "compiling {src} failed");

    let g = Gamepads::start(&dir.join("pads"), Backend::Interposer).unwrap();
    let got: Arc<Mutex<Vec<(u64, usize, Rumble)>>> = Arc::default();
    let sink = got.clone();
    g.on_rumble(Box::new(move |viewer, pad, r| sink.lock().unwrap().push((viewer, pad, r))));
    // B held and the left stick a little right before the program opens the device.
    g.set(9, 0, &[0, 32767], &[1000]);
    let child = Command::new(&exe).arg("7").envs(g.env()).stdout(Stdio::piped()).spawn().unwrap();
    wait_readers(&g, 1, "the evdev reader");
    std::thread::sleep(Duration::from_millis(200)); // let it ask its ioctls first
    // A down, B up, stick hard left: 3 events and SYN_REPORT.
    g.set(9, 0, &[32767, 0], &[-32767]);
    // Then the right trigger fully and the d-pad right: 2 events and SYN_REPORT.
    let mut b = [0; 17];
    b[0] = 32767;
    b[7] = 32767;
    b[15] = 32767;
    g.set(9, 0, &b, &[-32767]);
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let want = [
        "version 10001 id 3 045e 028e 0114",
        "name 41 Kelpie virtual gamepad (Xbox 360 layout)",
        "phys kelpie/gamepad0/input0 uniq kelpie-pad0",
        "props 8 0",
        "types len 8: 0 1 3 15",
        "keys len 96: 130 131 133 134 136 137 13a 13b 13c 13d 13e",
        "axes len 8: 0 1 2 3 4 5 10 11",
        "ff len 16: 50 60",
        "ABS_X -32768..32767 fuzz 16 flat 128",
        "ABS_RZ 0..255",
        "ABS_HAT0Y -1..1",
        "effects 16",
        "grab 0 -1 1 0",
        // The state at open, from the snapshot: B held, the stick at 1000, triggers released.
        "keys: 131",
        "abs: 1000 0 0 0 0 0 0 0",
        "short read -1 1",
        "ready",
        "event 1 130 1 1",
        "event 1 131 0 1",
        "event 3 0 -32767 1",
        "event 0 0 0 1",
        "event 3 5 255 1",
        "event 3 10 1 1",
        "event 0 0 0 1",
        // The state it read: what EVIOCGKEY/EVIOCGABS now say.
        "keys: 130",
        "abs: -32767 0 0 0 0 255 1 0",
        "upload 0 id 0 periodic -1 1",
        "play 24",
        "erase 0 -1",
        "event1004 -1 2",
    ];
    assert_eq!(lines, want, "{text}");
    // Played, then stopped by the erase; both for the viewer driving pad 0.
    for _ in 0..200 {
        if got.lock().unwrap().len() >= 2 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        *got.lock().unwrap(),
        [
            (9, 0, Rumble { strong: 0x8000, weak: 0x4000, duration_ms: 300 }),
            (9, 0, Rumble { strong: 0, weak: 0, duration_ms: 0 }),
        ]
    );
    assert_eq!(g.counters().rumble.load(Ordering::Relaxed), 2);
    assert_eq!(g.counters().rumble_refused.load(Ordering::Relaxed), 0);
    let _ = std::fs::remove_dir_all(&dir);
}

fn build_c(dir: &std::path::Path, name: &str) -> std::path::PathBuf {
    let exe = dir.join(name);
    let src = format!("{}/tests/c/{name}.c", env!("CARGO_MANIFEST_DIR"));
    let built = Command::new("cc")
        .args(["-std=gnu11", "-Wall", "-Werror", "-o"])
        .arg(&exe)
        .arg(&src)
        .arg("-ldl")
        .status()
        .expect("cc is installed (scripts/install-deps.sh)");
    assert!(built.success(), "compiling {src} failed");
    exe
}

#[test]
fn a_program_that_lists_dev_input_finds_the_served_pads_as_character_devices() {
    let dir = std::env::temp_dir().join(format!("kelpie-gamepad-devfs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let exe = build_c(&dir, "devfs_lister");
    let g = Gamepads::start(&dir.join("pads"), Backend::Interposer).unwrap();
    // Only pad 0 is served: the other pads' sockets go.
    for n in 1..4 {
        std::fs::remove_file(g.dir().join(format!("js{n}.sock"))).unwrap();
        std::fs::remove_file(g.dir().join(format!("ev{n}.sock"))).unwrap();
    }
    assert!(!std::path::Path::new("/dev/input").exists(), "this test is for a machine without /dev/input");
    let out = Command::new(&exe).arg("pads").envs(g.env()).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let node = |path: &str, rdev: &str| {
        let mut v = vec![path.to_string()];
        for call in ["stat", "lstat", "fstatat", "stat64", "__xstat", "statx"] {
            v.push(match call {
                "stat64" | "statx" => format!("  {call}: chr {rdev}"),
                _ => format!("  {call}: chr 660 {rdev} uid 1"),
            });
        }
        v.push("  access rw 0 0 x -1 13".into());
        // The descriptor the interposer opened says the same (SDL compares st_rdev).
        v.push(format!("  fstat: chr 660 {rdev} uid 1"));
        v.push(format!("  fstatat empty: chr 660 {rdev} uid 1"));
        v
    };
    let mut want: Vec<String> = [
        // No /dev/input here: the socket directory stands in, as a plain directory.
        "/dev/input: other 755 0:0 uid 1",
        "dir 1",
        // Each served pad once, a character device (DT_CHR is 2); pads 1..3 not at all.
        "readdir: event1000 2 js0 2 (errno 0)",
        "readdir64: event1000 2 js0 2 (errno 0)",
        "scandir: event1000 2 (1)",
        "fstatat dirfd js0: chr 660 13:0 uid 1",
        "fdopendir: event1000 2 js0 2 (errno 0)",
        "readdir_r and rewinddir: event1000 as DT_CHR 2 times in two passes",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    want.extend(node("/dev/input/event1000", "13:1000"));
    want.extend(node("/dev/input/js0", "13:0"));
    want.push("/dev/input/event1003".into());
    for call in ["stat", "lstat", "fstatat", "stat64", "__xstat", "statx"] {
        want.push(format!("  {call}: error 2"));
    }
    want.push("  access rw -1 2 x -1 2".into());
    want.push("  open: error 19".into());
    assert_eq!(lines, want, "{text}");
    // The pads were opened through their sockets (the "fstat" lines above need a descriptor
    // the interposer opened). js0, closed at once, may be gone before the hub counts it.
    let t0 = std::time::Instant::now();
    while g.counters().readers.load(Ordering::Relaxed) < 1 && t0.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(g.counters().readers.load(Ordering::Relaxed) >= 1, "the hub served the lister");

    // Real directories list the same with the interposer as without.
    for real in ["/dev", env!("CARGO_MANIFEST_DIR"), "/"] {
        let plain = Command::new(&exe).args(["list", real]).output().unwrap().stdout;
        let ours = Command::new(&exe).args(["list", real]).envs(g.env()).output().unwrap().stdout;
        let plain = String::from_utf8(plain).unwrap();
        assert!(plain.lines().count() == 3 && plain.contains(" (errno 0)"), "{plain}");
        assert!(plain.len() > 40, "{real} lists some entries: {plain}");
        assert_eq!(String::from_utf8(ours).unwrap(), plain, "{real} is listed as it is");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
