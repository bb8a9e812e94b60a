-- The smallest endpoint: one command, one handler, one timer that sends it.
--   build/moonbus run examples/hello
--   build/moonbus send hello hello.Greet '{"name":"shell"}'
local bus = require "moonbus"

bus.command("hello.Greet", { name = "string" })

bus.endpoint { name = "hello", routes = { ["hello.Greet"] = "hello" } }

bus.handle("hello.Greet", function(greet, ctx)
  bus.log.info("hello, %s! (attempt %d)", greet.name, ctx.attempt)
end)

bus.after(0.5, function()
  bus.send("hello.Greet", { name = "world" })
end)
