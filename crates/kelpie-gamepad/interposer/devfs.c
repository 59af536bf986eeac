/* The pads as files: what makes programs that discover input devices by listing /dev/input
 * and stat()ing the nodes (SDL2, Steam, many games) find the pads kelpie_gamepad.c opens.
 *
 * A pad is present when its socket exists in $GAMEPAD_SOCKET_DIR: jsN.sock for
 * /dev/input/jsN, evN.sock for /dev/input/event(1000+N).
 *
 * - opendir()/fdopendir() of /dev/input, then readdir()/readdir64()/readdir_r()/
 *   readdir64_r(): the real entries, then one DT_CHR entry for each present pad (event1000..,
 *   js0..). A real entry with one of those names is left out, so that each shows once. Where
 *   /dev/input does not exist (a container), the listing is "." and ".." and the pads: the
 *   stream is the socket directory's with its own entries hidden, and open("/dev/input") opens
 *   the socket directory. stat("/dev/input") then reports that directory as mode 0755.
 * - stat(), lstat(), fstatat(), statx() (and their 64-bit and __xstat-era versions),
 *   access(), faccessat() of a present pad's path: a character device, mode 0660, the
 *   caller's uid and gid, rdev 13:N for jsN (joydev's own numbers) and 13:(1000+N) for
 *   event(1000+N) (inside the input major's dynamic range 256..1023, so that no real joystick
 *   or legacy event minor is the same). A pad's path whose socket is missing: ENOENT. fstat()
 *   of a descriptor opened for a pad reports the same as stat() of its path, as SDL compares
 *   st_rdev to tell devices apart.
 *
 * - scandir()/scandir64() of /dev/input: the same listing, filtered and sorted.
 * - getxattr(), lgetxattr(), listxattr(), llistxattr() of a pad: no attributes.
 *
 * Not interposed: getdents64() on a directory descriptor, scandirat(), glob() and ftw() (the
 * C library lists through its internal functions there), inotify and udev.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "kelpie_gamepad.h"

#define INPUT_DIR "/dev/input"
#define INPUT_MAJOR 13
#define MAX_DIRS 16

/* ---- the C library's own view, without going through the functions interposed here ---- */

static int raw_stat(int dirfd, const char *path, struct stat *st, int flags) {
#ifdef SYS_newfstatat
    return (int)syscall(SYS_newfstatat, dirfd, path, st, flags);
#else
    (void)dirfd, (void)path, (void)st, (void)flags;
    errno = ENOSYS;
    return -1;
#endif
}

static int exists(const char *path) {
    return syscall(SYS_faccessat, AT_FDCWD, path, F_OK) == 0;
}

static const char *socket_dir(void) {
    const char *dir = getenv("GAMEPAD_SOCKET_DIR");
    return dir && dir[0] ? dir : NULL;
}

/* What follows "/dev/input" in `path` (slashes skipped), or NULL when `path` is not in it. */
static const char *input_rest(const char *path) {
    if (!path || strncmp(path, INPUT_DIR, sizeof INPUT_DIR - 1) != 0) return NULL;
    const char *p = path + sizeof INPUT_DIR - 1;
    if (*p && *p != '/') return NULL;
    while (*p == '/') p++;
    return p;
}

/* "/dev/input", "/dev/input/" or "/dev/input/.". */
static int is_input_dir(const char *path) {
    const char *rest = input_rest(path);
    return rest && (!rest[0] || strcmp(rest, ".") == 0 || strcmp(rest, "./") == 0);
}

/* Whether we stand in for /dev/input: there is none and there are sockets. */
static int input_dir_faked(void) {
    return socket_dir() && !exists(INPUT_DIR);
}

/* ---- the pads' nodes ---- */

struct node {
    dev_t rdev;
    ino_t ino;
    struct timespec time;
};

/* The node of pad `pad` of `kind` when its socket exists; 0 when it does not. */
static int node_of(int pad, enum kind kind, struct node *n) {
    const char *dir = socket_dir();
    char sock[4096];
    if (!dir || snprintf(sock, sizeof sock, "%s/%s%d.sock", dir, kind == KIND_JS ? "js" : "ev", pad) >= (int)sizeof sock)
        return 0;
    struct stat st;
    if (raw_stat(AT_FDCWD, sock, &st, 0) < 0) {
        if (!exists(sock)) return 0;
        memset(&st, 0, sizeof st);
    }
    n->rdev = makedev(INPUT_MAJOR, kind == KIND_JS ? pad : EVENT_BASE + pad);
    n->ino = st.st_ino;
    n->time = st.st_mtim;
    return 1;
}

/* What a stat()-like call on `path` should answer: 1 and `*n` for a present pad, 0 with errno
 * ENOENT for a pad's path whose socket is missing, -1 for any other path (the C library's). */
static int lookup(const char *path, struct node *n) {
    enum kind kind;
    int pad = pad_of(path, &kind), saved = errno;
    if (pad < 0) return -1;
    if (node_of(pad, kind, n)) {
        errno = saved;
        return 1;
    }
    errno = ENOENT;
    return 0;
}

static int lookup_fd(int fd, struct node *n) {
    enum kind kind;
    int pad = pad_of_fd(fd, &kind), saved = errno;
    if (pad < 0) return -1;
    /* Open, though its socket is gone since: the same device still. */
    if (!node_of(pad, kind, n)) *n = (struct node){.rdev = makedev(INPUT_MAJOR, kind == KIND_JS ? pad : EVENT_BASE + pad)};
    errno = saved;
    return 1;
}

#define FILL_STAT(st, n)                                                                         \
    do {                                                                                         \
        memset((st), 0, sizeof *(st));                                                           \
        (st)->st_dev = makedev(0, 5);                                                            \
        (st)->st_ino = (n)->ino;                                                                 \
        (st)->st_mode = S_IFCHR | 0660;                                                          \
        (st)->st_nlink = 1;                                                                      \
        (st)->st_uid = getuid();                                                                 \
        (st)->st_gid = getgid();                                                                 \
        (st)->st_rdev = (n)->rdev;                                                               \
        (st)->st_blksize = 4096;                                                                 \
        (st)->st_atim = (st)->st_mtim = (st)->st_ctim = (n)->time;                               \
    } while (0)

/* stat() of /dev/input where we stand in for it: the socket directory, as a plain 0755. */
#define STAT_INPUT_DIR(st, next_call)                                                            \
    do {                                                                                         \
        int r_ = (next_call);                                                                    \
        if (r_ == 0) (st)->st_mode = S_IFDIR | 0755;                                             \
        return r_;                                                                               \
    } while (0)

/* Whether `fd` is /dev/input, or the socket directory standing in for a missing one. */
static int is_input_dir_fd(int fd) {
    const char *sockets = socket_dir();
    struct stat it, want;
    int saved = errno, yes = sockets && raw_stat(fd, "", &it, AT_EMPTY_PATH) == 0 &&
                            raw_stat(AT_FDCWD, input_dir_faked() ? sockets : INPUT_DIR, &want, 0) == 0 &&
                            it.st_dev == want.st_dev && it.st_ino == want.st_ino;
    errno = saved;
    return yes;
}

/* (dirfd, path) as an absolute path when it names a pad in /dev/input (fstatat(fd, "js0")). */
static const char *full_path(int dirfd, const char *path, char *buf, size_t size) {
    enum kind kind;
    if (!path || path[0] == '/' || dirfd == AT_FDCWD) return path;
    if (snprintf(buf, size, INPUT_DIR "/%s", path) >= (int)size || pad_of(buf, &kind) < 0) return path;
    return is_input_dir_fd(dirfd) ? buf : path;
}

#define STAT_LIKE(NAME, TYPE, PATH, CALL_NEXT)                                                   \
    static int (*next)();                                                                        \
    struct node n;                                                                               \
    int found = lookup(PATH, &n);                                                                \
    if (found == 1) {                                                                            \
        FILL_STAT(buf, &n);                                                                      \
        return 0;                                                                                \
    }                                                                                            \
    if (found == 0) return -1;                                                                   \
    if (!next) next = (int (*)())real(NAME);                                                     \
    if (is_input_dir(PATH) && input_dir_faked()) STAT_INPUT_DIR(buf, CALL_NEXT);                 \
    return CALL_NEXT;

#define FSTAT_LIKE(NAME, CALL_NEXT)                                                              \
    static int (*next)();                                                                        \
    struct node n;                                                                               \
    if (lookup_fd(fd, &n) == 1) {                                                                \
        FILL_STAT(buf, &n);                                                                      \
        return 0;                                                                                \
    }                                                                                            \
    if (!next) next = (int (*)())real(NAME);                                                     \
    return CALL_NEXT;

/* The socket directory stands in for a missing /dev/input (and /dev for its ".."). */
static const char *redirect(const char *path) {
    const char *rest = input_rest(path);
    if (!rest || !input_dir_faked()) return path;
    if (is_input_dir(path)) return socket_dir();
    if (strcmp(rest, "..") == 0 || strcmp(rest, "../") == 0) return "/dev";
    return path;
}
#define REDIRECT(path) redirect(path)

int stat(const char *path, struct stat *buf) { STAT_LIKE("stat", struct stat, path, next(REDIRECT(path), buf)) }
int lstat(const char *path, struct stat *buf) { STAT_LIKE("lstat", struct stat, path, next(REDIRECT(path), buf)) }
int stat64(const char *path, struct stat64 *buf) { STAT_LIKE("stat64", struct stat64, path, next(REDIRECT(path), buf)) }
int lstat64(const char *path, struct stat64 *buf) { STAT_LIKE("lstat64", struct stat64, path, next(REDIRECT(path), buf)) }
int fstat(int fd, struct stat *buf) { FSTAT_LIKE("fstat", next(fd, buf)) }
int fstat64(int fd, struct stat64 *buf) { FSTAT_LIKE("fstat64", next(fd, buf)) }

int fstatat(int dirfd, const char *path, struct stat *buf, int flags) {
    char tmp[4096];
    const char *p = full_path(dirfd, path, tmp, sizeof tmp);
    if (p && !p[0] && (flags & AT_EMPTY_PATH)) return fstat(dirfd, buf);
    STAT_LIKE("fstatat", struct stat, p, next(dirfd, REDIRECT(p), buf, flags))
}

int fstatat64(int dirfd, const char *path, struct stat64 *buf, int flags) {
    char tmp[4096];
    const char *p = full_path(dirfd, path, tmp, sizeof tmp);
    if (p && !p[0] && (flags & AT_EMPTY_PATH)) return fstat64(dirfd, buf);
    STAT_LIKE("fstatat64", struct stat64, p, next(dirfd, REDIRECT(p), buf, flags))
}

/* What programs built against a C library older than 2.33 call (`ver` is the struct's layout,
 * the one struct stat has here). */
int __xstat(int ver, const char *path, struct stat *buf) { STAT_LIKE("__xstat", struct stat, path, next(ver, REDIRECT(path), buf)) }
int __lxstat(int ver, const char *path, struct stat *buf) { STAT_LIKE("__lxstat", struct stat, path, next(ver, REDIRECT(path), buf)) }
int __xstat64(int ver, const char *path, struct stat64 *buf) { STAT_LIKE("__xstat64", struct stat64, path, next(ver, REDIRECT(path), buf)) }
int __lxstat64(int ver, const char *path, struct stat64 *buf) { STAT_LIKE("__lxstat64", struct stat64, path, next(ver, REDIRECT(path), buf)) }
int __fxstat(int ver, int fd, struct stat *buf) { FSTAT_LIKE("__fxstat", next(ver, fd, buf)) }
int __fxstat64(int ver, int fd, struct stat64 *buf) { FSTAT_LIKE("__fxstat64", next(ver, fd, buf)) }

int __fxstatat(int ver, int dirfd, const char *path, struct stat *buf, int flags) {
    char tmp[4096];
    const char *p = full_path(dirfd, path, tmp, sizeof tmp);
    if (p && !p[0] && (flags & AT_EMPTY_PATH)) return __fxstat(ver, dirfd, buf);
    STAT_LIKE("__fxstatat", struct stat, p, next(ver, dirfd, REDIRECT(p), buf, flags))
}

int __fxstatat64(int ver, int dirfd, const char *path, struct stat64 *buf, int flags) {
    char tmp[4096];
    const char *p = full_path(dirfd, path, tmp, sizeof tmp);
    if (p && !p[0] && (flags & AT_EMPTY_PATH)) return __fxstat64(ver, dirfd, buf);
    STAT_LIKE("__fxstatat64", struct stat64, p, next(ver, dirfd, REDIRECT(p), buf, flags))
}

static struct statx_timestamp stamp(struct timespec t) {
    return (struct statx_timestamp){.tv_sec = t.tv_sec, .tv_nsec = (uint32_t)t.tv_nsec};
}

int statx(int dirfd, const char *path, int flags, unsigned mask, struct statx *buf) {
    static int (*next)(int, const char *, int, unsigned, struct statx *);
    char tmp[4096];
    const char *p = full_path(dirfd, path, tmp, sizeof tmp);
    struct node n;
    int found = p && !p[0] && (flags & AT_EMPTY_PATH) ? lookup_fd(dirfd, &n) : lookup(p, &n);
    if (found == 1) {
        memset(buf, 0, sizeof *buf);
        buf->stx_mask = STATX_BASIC_STATS;
        buf->stx_blksize = 4096;
        buf->stx_nlink = 1;
        buf->stx_uid = getuid();
        buf->stx_gid = getgid();
        buf->stx_mode = S_IFCHR | 0660;
        buf->stx_ino = n.ino;
        buf->stx_atime = buf->stx_ctime = buf->stx_mtime = stamp(n.time);
        buf->stx_rdev_major = major(n.rdev);
        buf->stx_rdev_minor = minor(n.rdev);
        buf->stx_dev_minor = 5;
        return 0;
    }
    if (found == 0) return -1;
    if (!next) next = real("statx");
    if (is_input_dir(p) && input_dir_faked()) {
        int r = next(dirfd, socket_dir(), flags, mask, buf);
        if (r == 0) buf->stx_mode = S_IFDIR | 0755;
        return r;
    }
    return next(dirfd, REDIRECT(p), flags, mask, buf);
}

/* access(): a present pad is readable and writable, not executable. */
static int access_pad(const char *path, int mode) {
    struct node n;
    int found = lookup(path, &n);
    if (found == 1 && (mode & X_OK)) {
        errno = EACCES;
        return -1;
    }
    return found == 1 ? 0 : -1;
}

int access(const char *path, int mode) {
    static int (*next)(const char *, int);
    enum kind kind;
    if (pad_of(path, &kind) >= 0) return access_pad(path, mode);
    if (!next) next = real("access");
    return next(REDIRECT(path), mode);
}

int faccessat(int dirfd, const char *path, int mode, int flags) {
    static int (*next)(int, const char *, int, int);
    char tmp[4096];
    const char *p = full_path(dirfd, path, tmp, sizeof tmp);
    enum kind kind;
    if (pad_of(p, &kind) >= 0) return access_pad(p, mode);
    if (!next) next = real("faccessat");
    return next(dirfd, REDIRECT(p), mode, flags);
}

/* Extended attributes (ls -l asks for the SELinux label and ACLs): a pad has none. */
#define XATTR_LIKE(NAME, NONE, ...)                                                              \
    static ssize_t (*next)();                                                                    \
    struct node n;                                                                               \
    int found = lookup(path, &n);                                                                \
    if (found == 1) {                                                                            \
        if (NONE) errno = ENODATA;                                                               \
        return NONE ? -1 : 0;                                                                    \
    }                                                                                            \
    if (found == 0) return -1;                                                                   \
    if (!next) next = (ssize_t (*)())real(NAME);                                                 \
    return next(REDIRECT(path), __VA_ARGS__);

ssize_t getxattr(const char *path, const char *name, void *value, size_t size) { XATTR_LIKE("getxattr", 1, name, value, size) }
ssize_t lgetxattr(const char *path, const char *name, void *value, size_t size) { XATTR_LIKE("lgetxattr", 1, name, value, size) }
ssize_t listxattr(const char *path, char *list, size_t size) { XATTR_LIKE("listxattr", 0, list, size) }
ssize_t llistxattr(const char *path, char *list, size_t size) { XATTR_LIKE("llistxattr", 0, list, size) }

int devfs_open(const char *path, int flags) {
    if (!is_input_dir(path) || !input_dir_faked()) return -2;
    return (int)syscall(SYS_openat, AT_FDCWD, socket_dir(), flags, 0);
}

/* ---- listings of /dev/input ---- */

struct listing {
    DIR *dir;      /* NULL: a free slot */
    int faked;     /* the stream is the socket directory's, standing in for /dev/input */
    int real_done; /* the stream's own entries are all read */
    int next;      /* our next entry: 2 * pad + (0: event, 1: js) */
    struct dirent ent;
    struct dirent64 ent64;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct listing listings[MAX_DIRS];
static atomic_int n_listings;

static struct listing *listing_of(DIR *dir) {
    if (!dir || atomic_load(&n_listings) == 0) return NULL;
    struct listing *found = NULL;
    pthread_mutex_lock(&lock);
    for (int i = 0; i < MAX_DIRS && !found; i++)
        if (listings[i].dir == dir) found = &listings[i];
    pthread_mutex_unlock(&lock);
    return found;
}

/* Starts rewriting the listing of `dir`; 0 when every slot is taken. */
static int watch(DIR *dir, int faked) {
    int ok = 0;
    pthread_mutex_lock(&lock);
    for (int i = 0; i < MAX_DIRS && !ok; i++) {
        if (listings[i].dir) continue;
        listings[i] = (struct listing){.dir = dir, .faked = faked};
        atomic_fetch_add(&n_listings, 1);
        ok = 1;
    }
    pthread_mutex_unlock(&lock);
    return ok;
}

static void unwatch(DIR *dir) {
    pthread_mutex_lock(&lock);
    for (int i = 0; i < MAX_DIRS; i++) {
        if (listings[i].dir != dir) continue;
        listings[i].dir = NULL;
        atomic_fetch_sub(&n_listings, 1);
    }
    pthread_mutex_unlock(&lock);
}

DIR *opendir(const char *path) {
    static DIR *(*next)(const char *);
    if (!next) next = real("opendir");
    if (!is_input_dir(path) || !socket_dir()) return next(path);
    int faked = input_dir_faked();
    DIR *dir = next(faked ? socket_dir() : path);
    if (dir && !watch(dir, faked) && faked) {
        static int (*close_dir)(DIR *);
        if (!close_dir) close_dir = real("closedir");
        close_dir(dir);
        errno = EMFILE;
        return NULL;
    }
    return dir;
}

DIR *fdopendir(int fd) {
    static DIR *(*next)(int);
    if (!next) next = real("fdopendir");
    DIR *dir = next(fd);
    if (dir && is_input_dir_fd(fd)) watch(dir, input_dir_faked());
    return dir;
}

int closedir(DIR *dir) {
    static int (*next)(DIR *);
    if (!next) next = real("closedir");
    if (listing_of(dir)) unwatch(dir);
    return next(dir);
}

void rewinddir(DIR *dir) {
    static void (*next)(DIR *);
    if (!next) next = real("rewinddir");
    struct listing *l = listing_of(dir);
    if (l) l->real_done = l->next = 0;
    next(dir);
}

/* Whether a stream's own entry `name` is shown: not ours (ours come after), and in a stream
 * standing in for /dev/input only "." and "..". */
static int shown(const struct listing *l, const char *name) {
    if (l->faked) return strcmp(name, ".") == 0 || strcmp(name, "..") == 0;
    char path[300];
    enum kind kind;
    snprintf(path, sizeof path, INPUT_DIR "/%s", name);
    return pad_of(path, &kind) < 0;
}

/* Our next entry's name and inode, or 0 when all present pads were listed. */
static int next_pad(struct listing *l, char *name, size_t size, ino_t *ino) {
    while (l->next < 2 * MAX_PADS) {
        int pad = l->next / 2;
        enum kind kind = l->next % 2 ? KIND_JS : KIND_EV;
        l->next++;
        struct node n;
        if (!node_of(pad, kind, &n)) continue;
        if (kind == KIND_JS) snprintf(name, size, "js%d", pad);
        else snprintf(name, size, "event%d", EVENT_BASE + pad);
        *ino = n.ino ? n.ino : (ino_t)(l->next + 1);
        return 1;
    }
    return 0;
}

#define READDIR_LIKE(NAME, ENT, FIELD)                                                           \
    static ENT *(*next)(DIR *);                                                                  \
    if (!next) next = real(NAME);                                                                \
    struct listing *l = listing_of(dir);                                                         \
    if (!l) return next(dir);                                                                    \
    int saved = errno;                                                                           \
    while (!l->real_done) {                                                                      \
        errno = 0;                                                                               \
        ENT *e = next(dir);                                                                      \
        if (!e) {                                                                                \
            if (errno) return NULL; /* an error reading the real directory */                    \
            errno = saved;                                                                       \
            l->real_done = 1;                                                                    \
            break;                                                                               \
        }                                                                                        \
        errno = saved;                                                                           \
        if (shown(l, e->d_name)) return e;                                                       \
    }                                                                                            \
    ENT *e = &l->FIELD;                                                                          \
    ino_t ino;                                                                                   \
    int more = next_pad(l, e->d_name, sizeof e->d_name, &ino);                                   \
    errno = saved; /* the end of a listing leaves errno alone */                                 \
    if (!more) return NULL;                                                                      \
    e->d_ino = ino;                                                                              \
    e->d_off = 0x7fff0000 + l->next;                                                             \
    e->d_reclen = sizeof *e;                                                                     \
    e->d_type = DT_CHR;                                                                          \
    return e;

struct dirent *readdir(DIR *dir) { READDIR_LIKE("readdir", struct dirent, ent) }
struct dirent64 *readdir64(DIR *dir) { READDIR_LIKE("readdir64", struct dirent64, ent64) }

/* The reentrant forms (deprecated, still called): a copy of what readdir() gives. */
int readdir_r(DIR *dir, struct dirent *entry, struct dirent **result) {
    static int (*next)(DIR *, struct dirent *, struct dirent **);
    if (!next) next = real("readdir_r");
    if (!listing_of(dir)) return next(dir, entry, result);
    errno = 0;
    struct dirent *e = readdir(dir);
    if (!e && errno) return errno;
    if (e) memcpy(entry, e, sizeof *entry);
    *result = e ? entry : NULL;
    return 0;
}

int readdir64_r(DIR *dir, struct dirent64 *entry, struct dirent64 **result) {
    static int (*next)(DIR *, struct dirent64 *, struct dirent64 **);
    if (!next) next = real("readdir64_r");
    if (!listing_of(dir)) return next(dir, entry, result);
    errno = 0;
    struct dirent64 *e = readdir64(dir);
    if (!e && errno) return errno;
    if (e) memcpy(entry, e, sizeof *entry);
    *result = e ? entry : NULL;
    return 0;
}

/* scandir() of /dev/input (SDL2 lists it this way since 2.26): the C library's own lists
 * through its internal functions, so this one reads through ours. */
#define SCANDIR_LIKE(NAME, ENT, READ)                                                            \
    static int (*next)();                                                                        \
    if (!is_input_dir(path) || !socket_dir()) {                                                  \
        if (!next) next = (int (*)())real(NAME);                                                 \
        return next(path, list, filter, compar);                                                 \
    }                                                                                            \
    DIR *dir = opendir(path);                                                                    \
    if (!dir) return -1;                                                                         \
    ENT **all = NULL, *e;                                                                        \
    size_t n = 0, cap = 0;                                                                       \
    int failed = 0;                                                                              \
    while (!failed && (e = READ(dir))) {                                                         \
        if (filter && !filter(e)) continue;                                                      \
        ENT *copy = malloc(sizeof *copy);                                                        \
        if (n == cap) {                                                                          \
            ENT **more = realloc(all, (cap = cap ? 2 * cap : 16) * sizeof *all);                 \
            if (more) all = more;                                                                \
            else failed = 1;                                                                     \
        }                                                                                        \
        if (!copy || failed) {                                                                   \
            free(copy);                                                                          \
            failed = 1;                                                                          \
            break;                                                                               \
        }                                                                                        \
        memcpy(copy, e, sizeof *copy);                                                           \
        all[n++] = copy;                                                                         \
    }                                                                                            \
    closedir(dir);                                                                               \
    if (failed) {                                                                                \
        while (n) free(all[--n]);                                                                \
        free(all);                                                                               \
        errno = ENOMEM;                                                                          \
        return -1;                                                                               \
    }                                                                                            \
    if (compar && n > 1) qsort(all, n, sizeof *all, (int (*)(const void *, const void *))compar); \
    *list = all;                                                                                 \
    return (int)n;

int scandir(const char *path, struct dirent ***list, int (*filter)(const struct dirent *),
            int (*compar)(const struct dirent **, const struct dirent **)) {
    SCANDIR_LIKE("scandir", struct dirent, readdir)
}

int scandir64(const char *path, struct dirent64 ***list, int (*filter)(const struct dirent64 *),
              int (*compar)(const struct dirent64 **, const struct dirent64 **)) {
    SCANDIR_LIKE("scandir64", struct dirent64, readdir64)
}
