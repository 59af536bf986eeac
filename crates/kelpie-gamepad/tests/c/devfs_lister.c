/* A program that discovers pads as SDL2 and Steam do: list /dev/input, stat() each node,
 * keep the character devices, open them and compare st_rdev. Prints what it saw, one fact a
 * line, for tests/interposer.rs.
 * Usage: devfs_lister pads        the pads part (run with the interposer, pad 0 only served)
 *        devfs_lister list DIR    DIR's entries with their types, sorted (run with and
 *                                 without the interposer: the two must be the same) */
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

static int by_name(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every entry of `dir` but "." and "..", "name type" each, sorted, on one line. */
static void listing(const char *what, DIR *dir, int use64) {
    char *names[4096];
    size_t n = 0;
    if (!dir) {
        printf("%s: opendir failed %d\n", what, errno);
        return;
    }
    for (;;) {
        errno = 0;
        const char *name;
        unsigned type;
        if (use64) {
            struct dirent64 *e = readdir64(dir);
            if (!e) break;
            name = e->d_name;
            type = e->d_type;
        } else {
            struct dirent *e = readdir(dir);
            if (!e) break;
            name = e->d_name;
            type = e->d_type;
        }
        if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0 || n == 4096) continue;
        if (asprintf(&names[n], "%s %u", name, type) < 0) abort();
        n++;
    }
    int end_errno = errno;
    closedir(dir);
    qsort(names, n, sizeof names[0], by_name);
    printf("%s:", what);
    for (size_t i = 0; i < n; i++) {
        printf(" %s", names[i]);
        free(names[i]);
    }
    printf(" (errno %d)\n", end_errno);
}

/* As SDL2 (2.26 on) scans: scandir() keeping the event devices, sorted. */
static int events_only(const struct dirent *e) {
    return strncmp(e->d_name, "event", 5) == 0;
}

static void scan(const char *path, int events) {
    struct dirent **list;
    int n = scandir(path, &list, events ? events_only : NULL, alphasort);
    printf("scandir:");
    for (int i = 0; i < n; i++) {
        printf(" %s %u", list[i]->d_name, list[i]->d_type);
        free(list[i]);
    }
    if (n >= 0) free(list);
    printf(" (%d)\n", n < 0 ? -errno : n);
}

static void stat_line(const char *what, int r, const struct stat *st) {
    if (r < 0) printf("%s: error %d\n", what, errno);
    else
        printf("%s: %s %o %u:%u uid %d\n", what, S_ISCHR(st->st_mode) ? "chr" : "other", st->st_mode & 07777,
               major(st->st_rdev), minor(st->st_rdev), st->st_uid == getuid());
}

static void node(const char *path) {
    struct stat st;
    printf("%s\n", path);
    stat_line("  stat", stat(path, &st), &st);
    stat_line("  lstat", lstat(path, &st), &st);
    stat_line("  fstatat", fstatat(AT_FDCWD, path, &st, 0), &st);
    struct stat64 st64;
    int r = stat64(path, &st64);
    if (r < 0) printf("  stat64: error %d\n", errno);
    else printf("  stat64: %s %u:%u\n", S_ISCHR(st64.st_mode) ? "chr" : "other", major(st64.st_rdev), minor(st64.st_rdev));
    /* What programs built against a C library before 2.33 call; ver 1 is struct stat's
     * layout on x86_64. */
    int (*xstat)(int, const char *, struct stat *) = (int (*)(int, const char *, struct stat *))dlsym(RTLD_DEFAULT, "__xstat");
    if (xstat) stat_line("  __xstat", xstat(1, path, &st), &st);
    struct statx sx;
    if (statx(AT_FDCWD, path, 0, STATX_BASIC_STATS, &sx) < 0) printf("  statx: error %d\n", errno);
    else printf("  statx: %s %u:%u\n", S_ISCHR(sx.stx_mode) ? "chr" : "other", sx.stx_rdev_major, sx.stx_rdev_minor);
    int a = access(path, R_OK | W_OK), ae = errno, x = access(path, X_OK), xe = errno;
    printf("  access rw %d %d x %d %d\n", a, a < 0 ? ae : 0, x, x < 0 ? xe : 0);
    int fd = open(path, O_RDONLY | O_NONBLOCK);
    if (fd < 0) {
        printf("  open: error %d\n", errno);
        return;
    }
    stat_line("  fstat", fstat(fd, &st), &st);
    stat_line("  fstatat empty", fstatat(fd, "", &st, AT_EMPTY_PATH), &st);
    close(fd);
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "list") == 0) {
        listing("readdir", opendir(argv[2]), 0);
        listing("readdir64", opendir(argv[2]), 1);
        scan(argv[2], 0);
        return 0;
    }
    struct stat st;
    stat_line("/dev/input", stat("/dev/input", &st), &st);
    printf("dir %d\n", S_ISDIR(st.st_mode));
    listing("readdir", opendir("/dev/input"), 0);
    listing("readdir64", opendir("/dev/input/"), 1);
    scan("/dev/input", 1);
    int dfd = open("/dev/input", O_RDONLY | O_DIRECTORY);
    stat_line("fstatat dirfd js0", fstatat(dfd, "js0", &st, 0), &st);
    listing("fdopendir", fdopendir(dfd), 0);
    /* readdir_r, and rewinddir lists again. */
    DIR *d = opendir("/dev/input");
    struct dirent ent, *res;
    int seen = 0;
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    for (int pass = 0; pass < 2; pass++) {
        while (readdir_r(d, &ent, &res) == 0 && res)
            seen += strcmp(ent.d_name, "event1000") == 0 && ent.d_type == DT_CHR;
        rewinddir(d);
    }
    closedir(d);
    printf("readdir_r and rewinddir: event1000 as DT_CHR %d times in two passes\n", seen);
    node("/dev/input/event1000");
    node("/dev/input/js0");
    node("/dev/input/event1003");
    return 0;
}
