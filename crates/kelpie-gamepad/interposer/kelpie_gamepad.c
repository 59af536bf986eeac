/* Kelpie's gamepad interposer, loaded with LD_PRELOAD into programs on Kelpie's display.
 *
 * A container without /dev/uinput has no joystick devices, so this library makes the paths
 * /dev/input/js0 .. js3 open a Unix socket instead: $GAMEPAD_SOCKET_DIR/jsN.sock, which the
 * Kelpie server feeds with `struct js_event` records (the initial state flagged
 * JS_EVENT_INIT, then every change). read(), poll() and select() work on the socket as they
 * do on the device; the joystick ioctls are answered here, from the fixed layout Kelpie
 * presents (an Xbox 360 pad as the xpad driver shows it: 8 axes, 11 buttons). Any other path,
 * descriptor or request goes to the C library untouched.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/input.h>
#include <linux/joystick.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX_PADS 4
#define MAX_FDS 64
#define PAD_NAME "Kelpie virtual gamepad (Xbox 360 layout)"

static const unsigned char AXES[] = {ABS_X, ABS_Y, ABS_Z, ABS_RX, ABS_RY, ABS_RZ, ABS_HAT0X, ABS_HAT0Y};
static const unsigned short BUTTONS[] = {BTN_SOUTH, BTN_EAST,  BTN_NORTH, BTN_WEST,   BTN_TL,    BTN_TR,
                                         BTN_SELECT, BTN_START, BTN_MODE, BTN_THUMBL, BTN_THUMBR};

static void *real(const char *name) {
    void *f = dlsym(RTLD_NEXT, name);
    if (!f) {
        fprintf(stderr, "kelpie_gamepad: no %s in the C library\n", name);
        abort();
    }
    return f;
}

/* Descriptors this library opened (a socket standing for a joystick), stored as fd + 1 (0:
 * a free slot). Lock-free, so that close() stays async-signal-safe (a child between fork and
 * exec closes descriptors while another thread of the parent may have been in here). */
static _Atomic int fds[MAX_FDS];

static int is_ours(int fd) {
    for (int i = 0; i < MAX_FDS; i++)
        if (atomic_load(&fds[i]) == fd + 1) return 1;
    return 0;
}

static void forget(int fd) {
    for (int i = 0; i < MAX_FDS; i++) {
        int want = fd + 1;
        if (atomic_compare_exchange_strong(&fds[i], &want, 0)) return;
    }
}

/* Takes a free slot for `fd`; 0 when every slot is taken. */
static int remember(int fd) {
    for (int i = 0; i < MAX_FDS; i++) {
        int free_slot = 0;
        if (atomic_compare_exchange_strong(&fds[i], &free_slot, fd + 1)) return 1;
    }
    return 0;
}

/* The pad a path names (0..MAX_PADS-1), or -1 when it is not one of ours. */
static int pad_of(const char *path) {
    static const char prefix[] = "/dev/input/js";
    if (!path || strncmp(path, prefix, sizeof prefix - 1) != 0) return -1;
    const char *n = path + sizeof prefix - 1;
    if (n[0] < '0' || n[0] >= '0' + MAX_PADS || n[1] != '\0') return -1;
    return n[0] - '0';
}

/* Connects to the socket of pad `pad`; -1 with errno as open() would set it. */
static int open_pad(int pad, int flags) {
    const char *dir = getenv("GAMEPAD_SOCKET_DIR");
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    if (!dir || snprintf(addr.sun_path, sizeof addr.sun_path, "%s/js%d.sock", dir, pad) >= (int)sizeof addr.sun_path) {
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
    shutdown(fd, SHUT_WR);
    if (!remember(fd)) {
        close(fd);
        errno = EMFILE;
        return -1;
    }
    return fd;
}

static mode_t mode_arg(int flags, va_list ap) {
    return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE ? va_arg(ap, mode_t) : 0;
}

int open(const char *path, int flags, ...) {
    static int (*next)(const char *, int, ...);
    int pad = pad_of(path);
    if (pad >= 0) return open_pad(pad, flags);
    if (!next) next = real("open");
    va_list ap;
    va_start(ap, flags);
    mode_t mode = mode_arg(flags, ap);
    va_end(ap);
    return next(path, flags, mode);
}

int open64(const char *path, int flags, ...) {
    static int (*next)(const char *, int, ...);
    int pad = pad_of(path);
    if (pad >= 0) return open_pad(pad, flags);
    if (!next) next = real("open64");
    va_list ap;
    va_start(ap, flags);
    mode_t mode = mode_arg(flags, ap);
    va_end(ap);
    return next(path, flags, mode);
}

int openat(int dirfd, const char *path, int flags, ...) {
    static int (*next)(int, const char *, int, ...);
    int pad = pad_of(path);
    if (pad >= 0) return open_pad(pad, flags);
    if (!next) next = real("openat");
    va_list ap;
    va_start(ap, flags);
    mode_t mode = mode_arg(flags, ap);
    va_end(ap);
    return next(dirfd, path, flags, mode);
}

int openat64(int dirfd, const char *path, int flags, ...) {
    static int (*next)(int, const char *, int, ...);
    int pad = pad_of(path);
    if (pad >= 0) return open_pad(pad, flags);
    if (!next) next = real("openat64");
    va_list ap;
    va_start(ap, flags);
    mode_t mode = mode_arg(flags, ap);
    va_end(ap);
    return next(dirfd, path, flags, mode);
}

/* What _FORTIFY_SOURCE builds call instead of open(). */
int __open_2(const char *path, int flags) {
    static int (*next)(const char *, int);
    int pad = pad_of(path);
    if (pad >= 0) return open_pad(pad, flags);
    if (!next) next = real("__open_2");
    return next(path, flags);
}

int __open64_2(const char *path, int flags) {
    static int (*next)(const char *, int);
    int pad = pad_of(path);
    if (pad >= 0) return open_pad(pad, flags);
    if (!next) next = real("__open64_2");
    return next(path, flags);
}

int close(int fd) {
    static int (*next)(int);
    if (!next) next = real("close");
    if (fd >= 0) forget(fd);
    return next(fd);
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
        unsigned char n = sizeof AXES;
        return give(arg, size, &n, 1);
    }
    case _IOC_NR(JSIOCGBUTTONS): {
        unsigned char n = sizeof BUTTONS / sizeof BUTTONS[0];
        return give(arg, size, &n, 1);
    }
    case _IOC_NR(JSIOCGNAME(0)): {
        /* Like the kernel: the length copied, the name cut to the buffer's size. */
        size_t len = strlen(PAD_NAME) + 1;
        if (!arg) {
            errno = EFAULT;
            return -1;
        }
        if (len > size) len = size;
        memcpy(arg, PAD_NAME, len);
        return (int)len;
    }
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
        struct js_corr corr[sizeof AXES];
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

int ioctl(int fd, unsigned long request, ...) {
    static int (*next)(int, unsigned long, ...);
    va_list ap;
    va_start(ap, request);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    if (is_ours(fd)) return joystick_ioctl(request, arg);
    if (!next) next = real("ioctl");
    return next(fd, request, arg);
}
