/* filewatch.h — a set of files whose changes are reported (hot reload, DESIGN §7).
 *
 * Provides: add files, start and stop watching, a callback per changed file. A file is
 * watched through its directory (inotify), so a file replaced by a rename (how most
 * editors save) or deleted and written again is still seen.
 * Uses: libev (an ev_io on the inotify descriptor). Never: reads the files or knows Lua. */
#ifndef MOONBUS_FILEWATCH_H
#define MOONBUS_FILEWATCH_H

#include "status.h"

struct ev_loop;
typedef struct mb_filewatch mb_filewatch;

/* A watched file was written or replaced (path as it was added), or NULL when the kernel
 * dropped events (its queue overflowed): anything may have changed. */
typedef void (*mb_filewatch_fn)(void *ud, const char *path);

mb_filewatch *mb_filewatch_new(struct ev_loop *loop, mb_filewatch_fn fn, void *ud);
/* Adds path (again: nothing happens). Watched at once when started, else from the start.
 * MB_OK, MB_ENOMEM, or MB_EIO when its directory cannot be watched (err says why). */
int mb_filewatch_add(mb_filewatch *w, const char *path, mb_err *err);
/* Starts watching every file added. MB_OK or MB_EIO (inotify unavailable: err says why). */
int mb_filewatch_start(mb_filewatch *w, mb_err *err);
void mb_filewatch_stop(mb_filewatch *w);
void mb_filewatch_free(mb_filewatch *w);
/* How many files are watched. */
unsigned mb_filewatch_count(const mb_filewatch *w);

#endif
