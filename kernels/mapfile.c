// mapfile.c: see mapfile.h.
#include "mapfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"

// Opens PATH, which must be a regular file; its size in *len. Returns the fd or -1.
static int open_regular(const char *path, size_t *len) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        a2f_set_error("%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        a2f_set_error("%s: cannot stat: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    if (!S_ISREG(sb.st_mode)) {
        a2f_set_error("%s: not a regular file", path);
        close(fd);
        return -1;
    }
    *len = (size_t)sb.st_size;
    return fd;
}

int map_file(MappedFile *m, const char *path) {
    memset(m, 0, sizeof *m);
    size_t len;
    int fd = open_regular(path, &len);
    if (fd < 0) return -1;
    void *map = NULL;
    if (len > 0) {
        map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            a2f_set_error("%s: cannot mmap %zu bytes: %s", path, len, strerror(errno));
            close(fd);
            return -1;
        }
    }
    close(fd);
    m->data = map ? map : "";
    m->len = len;
    m->mapped = map != NULL;
    return 0;
}

int read_file(MappedFile *m, const char *path, size_t max_len, const char *what) {
    memset(m, 0, sizeof *m);
    size_t n, got = 0;
    int fd = open_regular(path, &n);
    if (fd < 0) return -1;
    if (n > max_len) {
        a2f_set_error("%s: file too large for %s (%lld bytes)", path, what, (long long)n);
        close(fd);
        return -1;
    }
    char *buf = malloc(n + 1);
    if (!buf) {
        a2f_set_error("%s: out of memory reading %zu bytes", path, n);
        close(fd);
        return -1;
    }
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            a2f_set_error("%s: read error: %s", path, r < 0 ? strerror(errno) : "unexpected end of file");
            free(buf);
            close(fd);
            return -1;
        }
        got += (size_t)r;
    }
    close(fd);
    buf[n] = 0;
    m->data = buf;
    m->len = n;
    m->allocated = 1;
    return 0;
}

void unmap_file(MappedFile *m) {
    if (m->mapped) munmap((void *)m->data, m->len);
    else if (m->allocated) free((void *)m->data);
    memset(m, 0, sizeof *m);
}

char *read_small_text(const char *path, const char *what) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        a2f_set_error("%s: cannot open", path);
        return NULL;
    }
    char *buf = xmalloc(1 << 20);
    size_t n = fread(buf, 1, (1 << 20) - 1, f);
    int big = !feof(f);
    fclose(f);
    buf[n] = 0;
    if (big) {
        a2f_set_error("%s: larger than 1 MiB, not a %s", path, what);
        free(buf);
        return NULL;
    }
    return buf;
}
