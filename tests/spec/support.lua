-- support — small helpers for the specs that work on both transports: play a broken or
-- foreign sender, and read what landed in a queue.
local testing = require "moonbus.testing"
local support = {}

local function path_of(url)
  return assert(url:match("^sqlite://([^?]+)"), "not a sqlite url: " .. url)
end

local function shell_quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

-- Runs one SQL statement with the sqlite3 CLI and returns its output without the last newline.
function support.sql(url, statement)
  local cmd = string.format("sqlite3 -cmd '.timeout 10000' '%s' \"%s\"", path_of(url),
    statement:gsub('"', '\\"'))
  local p = assert(io.popen(cmd))
  local out = p:read("a")
  p:close()
  return (out:gsub("\n$", ""))
end

-- Puts a raw message into queue, as a broken or foreign sender would. headers is a JSON
-- object as text; on RabbitMQ each string member becomes a header and each object member a
-- nested table (what moonbus never sends).
function support.inject(url, queue, id, mtype, headers, body)
  if testing.transport() == "sqlite" then
    return support.sql(url, string.format(
      "insert into messages(queue,id,type,headers,body,visible_at) values('%s','%s','%s','%s','%s',0)",
      queue, id, mtype, headers:gsub("'", "''"), body:gsub("'", "''")))
  end
  local args = { os.getenv("MOONBUS_ROOT") .. "/build/tools/amqp_inject", url, queue, id, mtype, body }
  for k, v in pairs(require("cjson").decode(headers)) do
    if type(v) == "table" then
      args[#args + 1] = "--nest"
      args[#args + 1] = k
    else
      args[#args + 1] = k .. "=" .. v
    end
  end
  for i, a in ipairs(args) do args[i] = shell_quote(a) end
  assert(os.execute(table.concat(args, " ")), "amqp_inject failed")
end

-- The messages in the error queue (or queue), oldest first, left where they are.
function support.parked(queue)
  return testing.browse(queue or "error")
end

-- Checks a conversation of three hops: A began it, B and C belong to it, each caused by
-- the one before. Each is { id = ctx.id, conv = ctx.conversation_id, rel = ctx.related_to }.
function support.assert_chain(A, B, C)
  local check = require "luassert"
  check.equal(A.id, A.conv)
  check.is_nil(A.rel)
  check.equal(A.id, B.conv)
  check.equal(A.id, B.rel)
  check.equal(A.id, C.conv)
  check.equal(B.id, C.rel)
end

function support.err_of(fn, ...)
  local ok, err = pcall(fn, ...)
  assert(not ok, "expected an error")
  return tostring(err)
end

return support
