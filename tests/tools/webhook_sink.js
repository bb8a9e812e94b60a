// webhook_sink.js — a webhook receiver for the system tests (tests/system/ops_alerts.sh):
// listens on 127.0.0.1 (port 0: any free one, written to PORT_FILE once listening), appends
// one JSON line per request to OUT_FILE ({method, url, event, type, agent, body}) and answers
// STATUS (default 204). Node is installed for the browser tests; nothing else is needed.
//   node webhook_sink.js PORT_FILE OUT_FILE [STATUS]
"use strict";
const http = require("http");
const fs = require("fs");
const [portFile, outFile, status = "204"] = process.argv.slice(2);

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    const line = {
      method: req.method,
      url: req.url,
      event: req.headers["x-moonbus-event"] || null,
      type: req.headers["content-type"] || null,
      agent: req.headers["user-agent"] || null,
      body: Buffer.concat(chunks).toString("utf8"),
    };
    fs.appendFileSync(outFile, JSON.stringify(line) + "\n");
    res.writeHead(Number(status), { "Content-Type": "text/plain" });
    res.end();
  });
});
server.listen(0, "127.0.0.1", () => {
  fs.writeFileSync(portFile + ".tmp", String(server.address().port));
  fs.renameSync(portFile + ".tmp", portFile);
});
process.on("SIGTERM", () => server.close(() => process.exit(0)));
