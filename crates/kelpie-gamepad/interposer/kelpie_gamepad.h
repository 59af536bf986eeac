/* What the two halves of the interposer share: kelpie_gamepad.c (open/read/write/ioctl of the
 * pads) and devfs.c (the pads in listings of /dev/input and in stat()). Hidden, so that these
 * names never interpose a program's own. */
#ifndef KELPIE_GAMEPAD_H
#define KELPIE_GAMEPAD_H

#define MAX_PADS 4
/* /dev/input/event(EVENT_BASE + pad): far above the numbers a real machine's devices get. */
#define EVENT_BASE 1000
#define HIDDEN __attribute__((visibility("hidden")))

enum kind { KIND_JS, KIND_EV };

/* The C library's `name` (the next definition after this library); aborts when there is none. */
HIDDEN void *real(const char *name);
/* The pad a path names (0..MAX_PADS-1) and its kind, or -1 when it is not one of ours. */
HIDDEN int pad_of(const char *path, enum kind *kind);
/* The pad of a descriptor this library opened for a pad (and its kind), or -1. */
HIDDEN int pad_of_fd(int fd, enum kind *kind);
/* open() of a missing /dev/input: the socket directory, whose listing readdir() rewrites;
 * -2 when `path` is not that. */
HIDDEN int devfs_open(const char *path, int flags);

#endif
