/* Kelpie's gamepad interposer, loaded with LD_PRELOAD into programs on Kelpie's display.
 *
 * A container without /dev/uinput has no input devices, so this library makes two families
 * of paths open a Unix socket in $GAMEPAD_SOCKET_DIR instead:
 *
 * - /dev/input/js0 .. js3 (joydev): jsN.sock, fed with `struct js_event` records (the state
 *   flagged JS_EVENT_INIT first, then every change). The joystick ioctls are answered here.
 * - /dev/input/event1000 .. event1003 (evdev; numbered from 1000 so that they never clash with
 *   a real device): evN.sock for pad N. The server first sends a 40-byte snapshot of the pad
 *   (read here at open), then `struct input_event` records, each change closed by SYN_REPORT.
 *   read() is watched so that EVIOCGKEY/EVIOCGABS answer the state the program has read; the
 *   evdev ioctls (version, id, name, phys, uniq, props, capability bits, absinfo, grab, force
 *   feedback) are answered here. A program writing EV_FF play/stop of an effect it uploaded
 *   with EVIOCSFF (FF_RUMBLE) makes this library send a 16-byte rumble record up the socket.
 *
 * Both layouts are an Xbox 360 pad as the xpad driver shows it (8 axes, 11 buttons). poll(),
 * select(), fcntl(O_NONBLOCK) work on the socket as on the device. devfs.c makes the pads
 * whose sockets exist appear in listings of /dev/input and in stat()/access() as character
 * devices, so that programs that discover devices that way (SDL2, Steam) find them; udev is
 * not interposed. Any other path, descriptor or request goes to the C library untouched.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/input.h>
#include <linux/joystick.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "kelpie_gamepad.h"

#define MAX_FDS 64
#define MAX_EFFECTS 16
#define PAD_NAME "Kelpie virtual gamepad (Xbox 360 layout)"
/* What the server sends first on an evdev socket: "KPEV", the buttons (bit i: BUTTONS[i]),
 * then the 8 axes' values in the evdev ranges, native byte order. */
#define SNAPSHOT_SIZE 40
/* What this library sends up an evdev socket to start (duration > 0) or stop a rumble:
 * "KPFF", u16 strong, u16 weak, u32 duration in ms (0xffffffff: until stopped), u32 delay. */
struct rumble_record {
    char magic[4];
    uint16_t strong, weak;
    uint32_t duration_ms, delay_ms;
};
_Static_assert(sizeof(struct rumble_record) == 16, "the server reads 16-byte rumble records");

static const unsigned char AXES[] = {ABS_X, ABS_Y, ABS_Z, ABS_RX, ABS_RY, ABS_RZ, ABS_HAT0X, ABS_HAT0Y};
static const unsigned short BUTTONS[] = {BTN_SOUTH, BTN_EAST,  BTN_NORTH, BTN_WEST,   BTN_TL,    BTN_TR,
                                         BTN_SELECT, BTN_START, BTN_MODE, BTN_THUMBL, BTN_THUMBR};
#define N_AXES (sizeof AXES)
#define N_BUTTONS (sizeof BUTTONS / sizeof BUTTONS[0])

void *real(const char *name) {
    void *f = dlsym(RTLD_NEXT, name);
    if (!f) {
        fprintf(stderr, "kelpie_gamepad: no %s in the C library\n", name);
        abort();
    }
    return f;
}

struct effect {
    int used, playing;
    uint16_t strong, weak, length, delay;
};

/* What this library keeps of an evdev descriptor: the state the program has read (for
 * EVIOCGKEY/EVIOCGABS), the effects it uploaded, the gain it set, whether it grabbed. */
struct device {
    enum kind kind;
    int pad;
    uint32_t keys;
    int32_t abs[N_AXES];
    struct effect effects[MAX_EFFECTS];
    uint16_t gain;
    int grabbed;
};

/* Descriptors this library opened (a socket standing for a device), stored as fd + 1 (0: a
 * free slot), and what it keeps of each. The slots are lock-free, so that close() stays
 * async-signal-safe (a child between fork and exec closes descriptors while another thread of
 * the parent may have been in here). */
static _Atomic int fds[MAX_FDS];
static struct device devices[MAX_FDS];

static struct device *device_of(int fd) {
    if (fd < 0) return NULL;
    for (int i = 0; i < MAX_FDS; i++)
        if (atomic_load(&fds[i]) == fd + 1) return &devices[i];
    return NULL;
}

int pad_of_fd(int fd, enum kind *kind) {
    struct device *dev = device_of(fd);
    if (!dev) return -1;
    *kind = dev->kind;
    return dev->pad;
}

/* Frees the slot of `fd`; the device it held, or NULL. */
static struct device *forget(int fd) {
    for (int i = 0; i < MAX_FDS; i++) {
        int want = fd + 1;
        if (atomic_compare_exchange_strong(&fds[i], &want, 0)) return &devices[i];
    }
    return NULL;
}

/* Takes a free slot for `fd`, filled with `dev`; 0 when every slot is taken. */
static int remember(int fd, const struct device *dev) {
    for (int i = 0; i < MAX_FDS; i++) {
        int free_slot = 0;
        /* Reserve with an impossible value, fill, then publish the descriptor. */
        if (atomic_compare_exchange_strong(&fds[i], &free_slot, -1)) {
            devices[i] = *dev;
            atomic_store(&fds[i], fd + 1);
            return 1;
        }
    }
    return 0;
}

int pad_of(const char *path, enum kind *kind) {
    static const char js[] = "/dev/input/js", ev[] = "/dev/input/event";
    if (!path) return -1;
    if (strncmp(path, js, sizeof js - 1) == 0) {
        const char *n = path + sizeof js - 1;
        if (n[0] < '0' || n[0] >= '0' + MAX_PADS || n[1] != '\0') return -1;
        *kind = KIND_JS;
        return n[0] - '0';
    }
    if (strncmp(path, ev, sizeof ev - 1) == 0) {
        const char *n = path + sizeof ev - 1;
        char *end;
        if (n[0] < '1' || n[0] > '9') return -1;
        long v = strtol(n, &end, 10);
        if (*end != '\0' || v < EVENT_BASE || v >= EVENT_BASE + MAX_PADS) return -1;
        *kind = KIND_EV;
        return (int)(v - EVENT_BASE);
    }
    return -1;
}

/* Reads exactly `len` bytes from a blocking or non-blocking socket, waiting up to 2 s. */
static int read_fully(int fd, void *buf, size_t len) {
    size_t got = 0;
    while (got < len) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 2000) <= 0) return -1;
        ssize_t n = recv(fd, (char *)buf + got, len - got, 0);
        if (n <= 0) {
            if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
            return -1;
        }
        got += (size_t)n;
    }
    return 0;
}

/* Connects to the socket of pad `pad`; -1 with errno as open() would set it. */
static int open_pad(int pad, enum kind kind, int flags) {
    const char *dir = getenv("GAMEPAD_SOCKET_DIR");
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    const char *name = kind == KIND_JS ? "js" : "ev";
    if (!dir || snprintf(addr.sun_path, sizeof addr.sun_path, "%s/%s%d.sock", dir, name, pad) >= (int)sizeof addr.sun_path) {
        errno = ENOENT;
        return -1;
    }
    int type = SOCK_STREAM | ((flags & O_CLOEXEC) ? SOCK_CLOEXEC : 0) | ((flags & O_NONBLOCK) ? SOCK_NONBLOCK : 0);
    int fd = socket(AF_UNIX, type, 0);
    if (fd < 0) return -1;
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
        int e = errno;
        close(fd);
        errno = (e == ECONNREFUSED || e == ENOENT) ? ENODEV : e;
        return -1;
    }
    struct device dev = {.kind = kind, .pad = pad, .gain = 0xffff};
    if (kind == KIND_JS) {
        shutdown(fd, SHUT_WR); /* a joystick takes no writes */
    } else {
        unsigned char snap[SNAPSHOT_SIZE];
        if (read_fully(fd, snap, sizeof snap) < 0 || memcmp(snap, "KPEV", 4) != 0) {
            close(fd);
            errno = ENODEV;
            return -1;
        }
        memcpy(&dev.keys, snap + 4, 4);
        memcpy(dev.abs, snap + 8, sizeof dev.abs);
    }
    if (!remember(fd, &dev)) {
        close(fd);
        errno = EMFILE;
        return -1;
    }
    return fd;
}

static mode_t mode_arg(int flags, va_list ap) {
    return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE ? va_arg(ap, mode_t) : 0;
}

#define OPEN_LIKE(NAME, ...)                                                                      \
    enum kind kind;                                                                               \
    int pad = pad_of(path, &kind);                                                                \
    if (pad >= 0) return open_pad(pad, kind, flags);                                              \
    int dir = devfs_open(path, flags);                                                            \
    if (dir != -2) return dir;                                                                    \
    if (!next) next = real(NAME);                                                                 \
    va_list ap;                                                                                   \
    va_start(ap, flags);                                                                          \
    mode_t mode = mode_arg(flags, ap);                                                            \
    va_end(ap);                                                                                   \
    return next(__VA_ARGS__, mode);

int open(const char *path, int flags, ...) {
    static int (*next)(const char *, int, ...);
    OPEN_LIKE("open", path, flags)
}

int open64(const char *path, int flags, ...) {
    static int (*next)(const char *, int, ...);
    OPEN_LIKE("open64", path, flags)
}

int openat(int dirfd, const char *path, int flags, ...) {
    static int (*next)(int, const char *, int, ...);
    OPEN_LIKE("openat", dirfd, path, flags)
}

int openat64(int dirfd, const char *path, int flags, ...) {
    static int (*next)(int, const char *, int, ...);
    OPEN_LIKE("openat64", dirfd, path, flags)
}

/* What _FORTIFY_SOURCE builds call instead of open(): a pad, /dev/input, or the real
 * `name` (looked up once into *next). */
static int open_2(const char *name, int (**next)(const char *, int), const char *path, int flags) {
    enum kind kind;
    int pad = pad_of(path, &kind);
    if (pad >= 0) return open_pad(pad, kind, flags);
    int dir = devfs_open(path, flags);
    if (dir != -2) return dir;
    if (!*next) *next = real(name);
    return (*next)(path, flags);
}

int __open_2(const char *path, int flags) {
    static int (*next)(const char *, int);
    return open_2("__open_2", &next, path, flags);
}

int __open64_2(const char *path, int flags) {
    static int (*next)(const char *, int);
    return open_2("__open64_2", &next, path, flags);
}

/* Sends a rumble record up the socket; best effort, never blocks (async-signal-safe). */
static void send_rumble(int fd, const struct device *dev, const struct effect *e, uint32_t times) {
    struct rumble_record r = {.magic = {'K', 'P', 'F', 'F'}};
    if (e && times > 0) {
        r.strong = (uint16_t)((uint32_t)e->strong * dev->gain / 0xffff);
        r.weak = (uint16_t)((uint32_t)e->weak * dev->gain / 0xffff);
        uint64_t d = e->length == 0 ? 0xffffffffu : (uint64_t)e->length * times;
        r.duration_ms = d > 0xffffffffu ? 0xffffffffu : (uint32_t)d;
        r.delay_ms = e->delay;
    }
    (void)send(fd, &r, sizeof r, MSG_DONTWAIT | MSG_NOSIGNAL);
}

/* Stops every effect `dev` plays, as the kernel does when the file is closed. */
static void stop_all(int fd, struct device *dev) {
    int any = 0;
    for (int i = 0; i < MAX_EFFECTS; i++) {
        any |= dev->effects[i].playing;
        dev->effects[i].playing = 0;
    }
    if (any) send_rumble(fd, dev, NULL, 0);
}

int close(int fd) {
    static int (*next)(int);
    if (!next) next = real("close");
    if (fd >= 0) {
        struct device *dev = forget(fd);
        if (dev && dev->kind == KIND_EV) stop_all(fd, dev);
    }
    return next(fd);
}

/* Notes what the program reads from an evdev socket, for EVIOCGKEY and EVIOCGABS. */
static void track(struct device *dev, const struct input_event *ev, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (ev[i].type == EV_KEY) {
            for (unsigned b = 0; b < N_BUTTONS; b++)
                if (ev[i].code == BUTTONS[b]) dev->keys = ev[i].value ? dev->keys | 1u << b : dev->keys & ~(1u << b);
        } else if (ev[i].type == EV_ABS) {
            for (unsigned a = 0; a < N_AXES; a++)
                if (ev[i].code == AXES[a]) dev->abs[a] = ev[i].value;
        }
    }
}

/* read() of an evdev descriptor: whole events only, as the kernel gives them. */
static ssize_t read_events(int fd, struct device *dev, void *buf, size_t count, ssize_t (*next)(int, void *, size_t)) {
    const size_t size = sizeof(struct input_event);
    if (count < size) {
        errno = EINVAL;
        return -1;
    }
    count -= count % size;
    ssize_t n = next(fd, buf, count);
    if (n <= 0) return n;
    size_t rest = (size_t)n % size;
    /* The server writes whole events; finish one a short read split. */
    if (rest && read_fully(fd, (char *)buf + n, size - rest) == 0) n += (ssize_t)(size - rest);
    else n -= (ssize_t)rest;
    track(dev, buf, (size_t)n / size);
    return n;
}

ssize_t read(int fd, void *buf, size_t count) {
    static ssize_t (*next)(int, void *, size_t);
    if (!next) next = real("read");
    struct device *dev = device_of(fd);
    if (dev && dev->kind == KIND_EV) return read_events(fd, dev, buf, count, next);
    return next(fd, buf, count);
}

/* What _FORTIFY_SOURCE builds call instead of read(). */
ssize_t __read_chk(int fd, void *buf, size_t count, size_t buflen) {
    static ssize_t (*next)(int, void *, size_t, size_t);
    if (!next) next = real("__read_chk");
    struct device *dev = device_of(fd);
    if (dev && dev->kind == KIND_EV) {
        static ssize_t (*plain)(int, void *, size_t);
        if (!plain) plain = real("read");
        if (count > buflen) abort(); /* what the checked read does */
        return read_events(fd, dev, buf, count, plain);
    }
    return next(fd, buf, count, buflen);
}

/* write() of an evdev descriptor: EV_FF plays or stops an uploaded effect or sets the gain;
 * other events are taken and ignored (no LEDs or sounds here). */
static ssize_t write_events(int fd, struct device *dev, const void *buf, size_t count) {
    const size_t size = sizeof(struct input_event);
    if (count != 0 && count < size) {
        errno = EINVAL;
        return -1;
    }
    size_t done = 0;
    for (; done + size <= count; done += size) {
        struct input_event ev;
        memcpy(&ev, (const char *)buf + done, size);
        if (ev.type != EV_FF) continue;
        if (ev.code == FF_GAIN) {
            dev->gain = (uint16_t)(ev.value < 0 ? 0 : ev.value > 0xffff ? 0xffff : ev.value);
        } else if (ev.code < MAX_EFFECTS && dev->effects[ev.code].used) {
            struct effect *e = &dev->effects[ev.code];
            e->playing = ev.value > 0;
            send_rumble(fd, dev, e, ev.value > 0 ? (uint32_t)ev.value : 0);
        }
    }
    return (ssize_t)done;
}

ssize_t write(int fd, const void *buf, size_t count) {
    static ssize_t (*next)(int, const void *, size_t);
    if (!next) next = real("write");
    struct device *dev = device_of(fd);
    if (dev && dev->kind == KIND_EV) return write_events(fd, dev, buf, count);
    return next(fd, buf, count);
}

/* Copies `len` bytes of `src` to the caller's buffer of `size`; what the kernel returns. */
static int give(void *arg, unsigned size, const void *src, unsigned len) {
    if (!arg) {
        errno = EFAULT;
        return -1;
    }
    memcpy(arg, src, len < size ? len : size);
    return 0;
}

/* A variable-length answer (a string or a bit array): the length copied, like the kernel. */
static int give_len(void *arg, unsigned size, const void *src, unsigned len) {
    if (give(arg, size, src, len) < 0) return -1;
    return (int)(len < size ? len : size);
}

static int joystick_ioctl(unsigned long request, void *arg) {
    unsigned size = _IOC_SIZE(request);
    if (_IOC_TYPE(request) != 'j') {
        errno = ENOTTY;
        return -1;
    }
    switch (_IOC_NR(request)) {
    case _IOC_NR(JSIOCGVERSION): {
        unsigned version = JS_VERSION;
        return give(arg, size, &version, sizeof version);
    }
    case _IOC_NR(JSIOCGAXES): {
        unsigned char n = N_AXES;
        return give(arg, size, &n, 1);
    }
    case _IOC_NR(JSIOCGBUTTONS): {
        unsigned char n = N_BUTTONS;
        return give(arg, size, &n, 1);
    }
    case _IOC_NR(JSIOCGNAME(0)):
        return give_len(arg, size, PAD_NAME, sizeof PAD_NAME);
    case _IOC_NR(JSIOCGAXMAP): {
        unsigned char map[ABS_CNT] = {0};
        memcpy(map, AXES, sizeof AXES);
        return give(arg, size, map, sizeof map);
    }
    case _IOC_NR(JSIOCGBTNMAP): {
        unsigned short map[KEY_MAX - BTN_MISC + 1] = {0};
        memcpy(map, BUTTONS, sizeof BUTTONS);
        return give(arg, size, map, sizeof map);
    }
    case _IOC_NR(JSIOCGCORR): {
        struct js_corr corr[N_AXES];
        memset(corr, 0, sizeof corr);
        return give(arg, size, corr, sizeof corr);
    }
    case _IOC_NR(JSIOCSCORR):
    case _IOC_NR(JSIOCSAXMAP):
    case _IOC_NR(JSIOCSBTNMAP):
        return 0; /* accepted and ignored: the layout is fixed */
    default:
        errno = EINVAL;
        return -1;
    }
}

#define BITS_BYTES(max) ((((max) + 64) / 64) * 8) /* BITS_TO_LONGS(max + 1) * sizeof(long) */

static void set_bit(unsigned char *bits, unsigned bit) {
    bits[bit / 8] |= (unsigned char)(1u << (bit % 8));
}

/* The axis ranges of xpad: sticks full 16 bits, triggers 0..255, the d-pad a hat -1..1. */
static struct input_absinfo absinfo(unsigned a, int32_t value) {
    struct input_absinfo i = {.value = value};
    switch (AXES[a]) {
    case ABS_Z:
    case ABS_RZ:
        i.maximum = 255;
        break;
    case ABS_HAT0X:
    case ABS_HAT0Y:
        i.minimum = -1;
        i.maximum = 1;
        break;
    default:
        i.minimum = -32768;
        i.maximum = 32767;
        i.fuzz = 16;
        i.flat = 128;
    }
    return i;
}

/* EVIOCGBIT(type): the event types, buttons, axes and force-feedback effects presented. */
static int give_bits(unsigned type, void *arg, unsigned size) {
    unsigned char bits[BITS_BYTES(KEY_MAX)] = {0};
    switch (type) {
    case 0: /* the event types (EV_SYN is 0) */
        set_bit(bits, EV_SYN);
        set_bit(bits, EV_KEY);
        set_bit(bits, EV_ABS);
        set_bit(bits, EV_FF);
        return give_len(arg, size, bits, BITS_BYTES(EV_MAX));
    case EV_KEY:
        for (unsigned b = 0; b < N_BUTTONS; b++) set_bit(bits, BUTTONS[b]);
        return give_len(arg, size, bits, BITS_BYTES(KEY_MAX));
    case EV_ABS:
        for (unsigned a = 0; a < N_AXES; a++) set_bit(bits, AXES[a]);
        return give_len(arg, size, bits, BITS_BYTES(ABS_MAX));
    case EV_FF:
        set_bit(bits, FF_RUMBLE);
        set_bit(bits, FF_GAIN);
        return give_len(arg, size, bits, BITS_BYTES(FF_MAX));
    case EV_REL:
        return give_len(arg, size, bits, BITS_BYTES(REL_MAX));
    case EV_MSC:
        return give_len(arg, size, bits, BITS_BYTES(MSC_MAX));
    case EV_SW:
        return give_len(arg, size, bits, BITS_BYTES(SW_MAX));
    case EV_LED:
        return give_len(arg, size, bits, BITS_BYTES(LED_MAX));
    case EV_SND:
        return give_len(arg, size, bits, BITS_BYTES(SND_MAX));
    default:
        errno = EINVAL;
        return -1;
    }
}

/* EVIOCSFF: stores a rumble effect (a new one when its id is -1); the id goes back. */
static int upload(int fd, struct device *dev, struct ff_effect *effect) {
    if (!effect) {
        errno = EFAULT;
        return -1;
    }
    if (effect->type != FF_RUMBLE) {
        errno = EINVAL;
        return -1;
    }
    int id = effect->id;
    if (id == -1) {
        for (id = 0; id < MAX_EFFECTS && dev->effects[id].used; id++) {
        }
        if (id == MAX_EFFECTS) {
            errno = ENOSPC;
            return -1;
        }
    } else if (id < 0 || id >= MAX_EFFECTS || !dev->effects[id].used) {
        errno = EINVAL;
        return -1;
    }
    struct effect *e = &dev->effects[id];
    e->used = 1;
    e->strong = effect->u.rumble.strong_magnitude;
    e->weak = effect->u.rumble.weak_magnitude;
    e->length = effect->replay.length;
    e->delay = effect->replay.delay;
    effect->id = (int16_t)id;
    /* Changing a playing effect changes what plays (SDL updates rumble this way). */
    if (e->playing) send_rumble(fd, dev, e, 1);
    return 0;
}

static int evdev_ioctl(int fd, struct device *dev, unsigned long request, void *arg) {
    unsigned size = _IOC_SIZE(request), nr = _IOC_NR(request);
    int value = (int)(intptr_t)arg; /* the requests that take an int take it by value */
    if (_IOC_TYPE(request) != 'E') {
        errno = EINVAL;
        return -1;
    }
    if (_IOC_DIR(request) == _IOC_READ && nr >= 0x20 && nr < 0x20 + EV_CNT) return give_bits(nr - 0x20, arg, size);
    if (_IOC_DIR(request) == _IOC_READ && nr >= 0x40 && nr < 0x40 + ABS_CNT) {
        struct input_absinfo info = {0};
        for (unsigned a = 0; a < N_AXES; a++)
            if (AXES[a] == nr - 0x40) info = absinfo(a, dev->abs[a]);
        return give(arg, size, &info, sizeof info);
    }
    if (_IOC_DIR(request) == _IOC_WRITE && nr >= 0xc0 && nr < 0xc0 + ABS_CNT) return 0; /* EVIOCSABS: fixed */
    switch (nr) {
    case _IOC_NR(EVIOCGVERSION): {
        int version = EV_VERSION;
        return give(arg, size, &version, sizeof version);
    }
    case _IOC_NR(EVIOCGID): {
        /* An Xbox 360 pad's ids, so that games know its layout. */
        struct input_id id = {.bustype = BUS_USB, .vendor = 0x045e, .product = 0x028e, .version = 0x0114};
        return give(arg, size, &id, sizeof id);
    }
    case _IOC_NR(EVIOCGNAME(0)):
        return give_len(arg, size, PAD_NAME, sizeof PAD_NAME);
    case _IOC_NR(EVIOCGPHYS(0)): {
        char phys[32];
        snprintf(phys, sizeof phys, "kelpie/gamepad%d/input0", dev->pad);
        return give_len(arg, size, phys, (unsigned)strlen(phys) + 1);
    }
    case _IOC_NR(EVIOCGUNIQ(0)): {
        char uniq[16];
        snprintf(uniq, sizeof uniq, "kelpie-pad%d", dev->pad);
        return give_len(arg, size, uniq, (unsigned)strlen(uniq) + 1);
    }
    case _IOC_NR(EVIOCGPROP(0)): {
        unsigned char props[BITS_BYTES(INPUT_PROP_MAX)] = {0};
        return give_len(arg, size, props, sizeof props);
    }
    case _IOC_NR(EVIOCGKEY(0)): {
        unsigned char bits[BITS_BYTES(KEY_MAX)] = {0};
        for (unsigned b = 0; b < N_BUTTONS; b++)
            if (dev->keys & 1u << b) set_bit(bits, BUTTONS[b]);
        return give_len(arg, size, bits, sizeof bits);
    }
    case _IOC_NR(EVIOCGLED(0)):
    case _IOC_NR(EVIOCGSND(0)):
    case _IOC_NR(EVIOCGSW(0)): {
        unsigned char bits[BITS_BYTES(LED_MAX)] = {0};
        return give_len(arg, size, bits, sizeof bits);
    }
    case _IOC_NR(EVIOCSFF):
        return upload(fd, dev, arg);
    case _IOC_NR(EVIOCRMFF):
        if (value < 0 || value >= MAX_EFFECTS || !dev->effects[value].used) {
            errno = EINVAL;
            return -1;
        }
        if (dev->effects[value].playing) send_rumble(fd, dev, NULL, 0);
        dev->effects[value] = (struct effect){0};
        return 0;
    case _IOC_NR(EVIOCGEFFECTS): {
        int n = MAX_EFFECTS;
        return give(arg, size, &n, sizeof n);
    }
    case _IOC_NR(EVIOCGRAB):
        if (value ? dev->grabbed : !dev->grabbed) {
            errno = value ? EBUSY : EINVAL;
            return -1;
        }
        dev->grabbed = value != 0;
        return 0;
    case _IOC_NR(EVIOCREVOKE):
    case _IOC_NR(EVIOCSCLOCKID):
        return 0; /* accepted; times are the server's wall clock */
    default:
        errno = EINVAL;
        return -1;
    }
}

int ioctl(int fd, unsigned long request, ...) {
    static int (*next)(int, unsigned long, ...);
    va_list ap;
    va_start(ap, request);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    struct device *dev = device_of(fd);
    if (dev) return dev->kind == KIND_JS ? joystick_ioctl(request, arg) : evdev_ioctl(fd, dev, request, arg);
    if (!next) next = real("ioctl");
    return next(fd, request, arg);
}
