/* paths.h — where moonbus finds its own files: the Lua modules (moonbus.testing, and the
 * templates of `moonbus new` under moonbus/templates) and the C module moonbus.so.
 * Installed (make install) they lie relative to the binary: PREFIX/bin/moonbus finds
 * PREFIX/share/lua/5.4 and PREFIX/lib/lua/5.4, whatever PREFIX and DESTDIR were; a binary of
 * the build tree finds the tree's modules/ and build/ (compiled in). $MOONBUS_MODULES
 * overrides the modules. Never: allocates or opens a file. */
#ifndef MOONBUS_PATHS_H
#define MOONBUS_PATHS_H

/* The folder whose moonbus/ holds the Lua modules (for package.path). */
const char *mb_paths_modules(void);
/* The folder that holds moonbus.so (for package.cpath). */
const char *mb_paths_cmodules(void);
/* The running binary's absolute path, or NULL when /proc/self/exe cannot be read. */
const char *mb_paths_self(void);

#endif
