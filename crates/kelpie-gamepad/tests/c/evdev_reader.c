/* An evdev reader as SDL2 and libevdev read a pad: open /dev/input/event1000 (through the
 * interposer), ask the ioctls, read `struct input_event`s, then upload a rumble effect, play
 * it and erase it. Prints what it saw, one fact a line, for tests/interposer.rs.
 * Usage: evdev_reader EVENTS (how many events to read before the force-feedback part). */
#include <errno.h>
#include <fcntl.h>
#include <linux/input.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define TEST_BIT(bits, n) ((bits[(n) / 8] >> ((n) % 8)) & 1)

static void bits_line(int fd, const char *what, unsigned type, unsigned max) {
    unsigned char bits[KEY_MAX / 8 + 1] = {0};
    int n = ioctl(fd, EVIOCGBIT(type, sizeof bits), bits);
    printf("%s len %d:", what, n);
    for (unsigned i = 0; i <= max; i++)
        if (TEST_BIT(bits, i)) printf(" %x", i);
    printf("\n");
}

static void state_line(int fd) {
    unsigned char keys[KEY_MAX / 8 + 1] = {0};
    ioctl(fd, EVIOCGKEY(sizeof keys), keys);
    printf("keys:");
    for (unsigned i = 0; i <= KEY_MAX; i++)
        if (TEST_BIT(keys, i)) printf(" %x", i);
    printf("\nabs:");
    static const unsigned axes[] = {ABS_X, ABS_Y, ABS_Z, ABS_RX, ABS_RY, ABS_RZ, ABS_HAT0X, ABS_HAT0Y};
    for (unsigned i = 0; i < 8; i++) {
        struct input_absinfo a;
        if (ioctl(fd, EVIOCGABS(axes[i]), &a) < 0) printf(" error");
        else printf(" %d", a.value);
    }
    printf("\n");
}

int main(int argc, char **argv) {
    int want = argc > 1 ? atoi(argv[1]) : 0;
    int fd = open("/dev/input/event1000", O_RDWR);
    if (fd < 0) {
        printf("open failed %d\n", errno);
        return 1;
    }
    int version = 0;
    struct input_id id;
    char name[256] = "", phys[64] = "", uniq[64] = "";
    unsigned char props[8] = {0xff};
    ioctl(fd, EVIOCGVERSION, &version);
    ioctl(fd, EVIOCGID, &id);
    printf("version %x id %x %04x %04x %04x\n", version, id.bustype, id.vendor, id.product, id.version);
    int n = ioctl(fd, EVIOCGNAME(sizeof name), name);
    printf("name %d %s\n", n, name);
    ioctl(fd, EVIOCGPHYS(sizeof phys), phys);
    ioctl(fd, EVIOCGUNIQ(sizeof uniq), uniq);
    printf("phys %s uniq %s\n", phys, uniq);
    int np = ioctl(fd, EVIOCGPROP(sizeof props), props);
    printf("props %d %d\n", np, props[0]);
    bits_line(fd, "types", 0, EV_MAX);
    bits_line(fd, "keys", EV_KEY, KEY_MAX);
    bits_line(fd, "axes", EV_ABS, ABS_MAX);
    bits_line(fd, "ff", EV_FF, FF_MAX);
    struct input_absinfo a;
    ioctl(fd, EVIOCGABS(ABS_X), &a);
    printf("ABS_X %d..%d fuzz %d flat %d\n", a.minimum, a.maximum, a.fuzz, a.flat);
    ioctl(fd, EVIOCGABS(ABS_RZ), &a);
    printf("ABS_RZ %d..%d\n", a.minimum, a.maximum);
    ioctl(fd, EVIOCGABS(ABS_HAT0Y), &a);
    printf("ABS_HAT0Y %d..%d\n", a.minimum, a.maximum);
    int effects = 0;
    ioctl(fd, EVIOCGEFFECTS, &effects);
    printf("effects %d\n", effects);
    int g1 = ioctl(fd, EVIOCGRAB, 1);
    int g2 = ioctl(fd, EVIOCGRAB, 1);
    int g2e = errno;
    int g3 = ioctl(fd, EVIOCGRAB, 0);
    printf("grab %d %d %d %d\n", g1, g2, g2e == EBUSY, g3);
    state_line(fd);
    char small[10];
    int r = (int)read(fd, small, sizeof small);
    printf("short read %d %d\n", r, r < 0 && errno == EINVAL);
    printf("ready\n");
    fflush(stdout);

    struct input_event ev[64];
    for (int got = 0; got < want;) {
        ssize_t len = read(fd, ev, sizeof ev);
        if (len <= 0 || len % sizeof ev[0]) {
            printf("read %zd\n", len);
            return 1;
        }
        for (size_t i = 0; i < len / sizeof ev[0]; i++, got++)
            printf("event %d %x %d %d\n", ev[i].type, ev[i].code, ev[i].value, ev[i].input_event_sec > 1600000000);
    }
    state_line(fd);

    struct ff_effect e = {.type = FF_RUMBLE, .id = -1};
    e.u.rumble.strong_magnitude = 0x8000;
    e.u.rumble.weak_magnitude = 0x4000;
    e.replay.length = 300;
    int up = ioctl(fd, EVIOCSFF, &e);
    struct ff_effect periodic = {.type = FF_PERIODIC, .id = -1};
    int bad = ioctl(fd, EVIOCSFF, &periodic);
    int bad_errno = errno;
    printf("upload %d id %d periodic %d %d\n", up, e.id, bad, bad_errno == EINVAL);
    struct input_event play = {.type = EV_FF, .code = (unsigned short)e.id, .value = 1};
    printf("play %zd\n", write(fd, &play, sizeof play));
    int erased = ioctl(fd, EVIOCRMFF, e.id), again = ioctl(fd, EVIOCRMFF, e.id);
    printf("erase %d %d\n", erased, again);
    close(fd);
    int other = open("/dev/input/event1004", O_RDONLY);
    int other_errno = errno;
    printf("event1004 %d %d\n", other, other_errno);
    return 0;
}
