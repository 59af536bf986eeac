//! The interposer in a real program: python3 started with `LD_PRELOAD` opens
//! `/dev/input/js0` (which does not exist here), asks its ioctls and reads the records the
//! hub writes.

use std::process::Command;

use kelpie_gamepad::Gamepads;

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
    let g = Gamepads::start(&dir).unwrap();
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
