-- support — small helpers for the specs: read the SQLite database a bus runs on.
local support = {}

local function path_of(url)
  return assert(url:match("^sqlite://([^?]+)"), "not a sqlite url: " .. url)
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

-- Inserts a raw row into queue, as a broken or foreign sender would.
function support.inject(url, queue, id, type, headers, body)
  support.sql(url, string.format(
    "insert into messages(queue,id,type,headers,body,visible_at) values('%s','%s','%s','%s','%s',0)",
    queue, id, type, headers:gsub("'", "''"), body:gsub("'", "''")))
end

function support.err_of(fn, ...)
  local ok, err = pcall(fn, ...)
  assert(not ok, "expected an error")
  return tostring(err)
end

return support
