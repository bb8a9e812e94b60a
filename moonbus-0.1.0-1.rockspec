-- moonbus as a Lua module (`require "moonbus"`, `require "moonbus.testing"`) for stock
-- lua5.4 and busted: the C core compiled into moonbus.so by the Makefile (build type make),
-- and the pure-Lua modules. The host binary and `moonbus new` come with `make install`.
--   luarocks --lua-version 5.4 make --tree /tmp/X moonbus-0.1.0-1.rockspec
-- Needs the C libraries of scripts/install-deps.sh (libev, SQLite, rabbitmq-c, libmicrohttpd,
-- OpenSSL's libcrypto) and their headers.
rockspec_format = "3.0"
package = "moonbus"
version = "0.1.0-1"
source = {
  url = "git+file:///usr/src/moonbus", -- replace with the published repository
  tag = "v0.1.0",
}
description = {
  summary = "A service bus whose message handlers are Lua scripts",
  detailed = [[
    moonbus routes, correlates, retries and parks messages beneath a small Lua API
    (bus.handle, bus.send, bus.publish, bus.request, ctx:reply), on an embedded SQLite
    database or RabbitMQ. This rock is the module: drive a real bus from lua5.4 or busted
    with moonbus.testing.
  ]],
  license = "MIT",
  labels = { "messaging", "rabbitmq", "sqlite", "libev" },
}
dependencies = { "lua >= 5.4, < 5.5", "lua-cjson" } -- Debian: lua-cjson (then --deps-mode none)
external_dependencies = {
  LIBEV = { header = "ev.h" },
  SQLITE3 = { header = "sqlite3.h" },
  RABBITMQ = { header = "amqp.h" },
  MICROHTTPD = { header = "microhttpd.h" },
}
build = {
  type = "make",
  build_target = "build/moonbus.so",
  build_variables = { LUA_CFLAGS = "-I$(LUA_INCDIR)" },
  install_pass = false,
  install = {
    lib = { moonbus = "build/moonbus.so" },
    lua = {
      ["moonbus.testing"] = "modules/moonbus/testing.lua",
      ["moonbus.ops"] = "modules/moonbus/ops.lua",
    },
  },
}
