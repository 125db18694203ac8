# A webhook receiver for the benchmarks in docs/performance.md ("Webhooks"):
# asyncio, HTTP/1.1 keep-alive, answers 200 to every POST and writes one line
# per delivery: arrival time, webhook-id, the task's completed_at.
# Usage: webhook_receiver.py PORT OUT_FILE
import asyncio, json, sys, time
out = open(sys.argv[2], 'w', buffering=1)
async def handle(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b'\r\n\r\n')
            headers = {}
            for line in head.split(b'\r\n')[1:]:
                if b':' in line:
                    k, v = line.split(b':', 1); headers[k.strip().lower()] = v.strip()
            body = await reader.readexactly(int(headers.get(b'content-length', b'0')))
            now = time.time()
            writer.write(b'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n')
            try:
                d = json.loads(body)['data']
                out.write('%.6f %s %s\n' % (now, headers.get(b'webhook-id', b'').decode(), d.get('completed_at') or ''))
            except Exception:
                pass
    except (asyncio.IncompleteReadError, ConnectionResetError):
        pass
    writer.close()
async def main():
    server = await asyncio.start_server(handle, '127.0.0.1', int(sys.argv[1]), backlog=512)
    async with server:
        await server.serve_forever()
asyncio.run(main())
