// The container image of the packet lab (same method as the oracle's orc_build_image_tar):
// a rootfs with busybox-static + socat and its libraries, imported with `docker import`.
//
//   listen NAME tcp:PORT udp:PORT ...
//     tcp -> busybox httpd; GET /cgi-bin/id answers "tcp NAME <client addr>"
//     udp -> socat UDP4-RECVFROM (and UDP6, v6-only, when the container has IPv6);
//            any datagram is answered with "udp NAME <client addr>"
//
// The tarball is built once per process and cached in os.tmpdir() under a name derived from
// the scripts and the binaries, so later processes reuse it.
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdirSync, renameSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { OWNER, removeDir, run, runOk, which } from './proc.js';

export const IMAGE_REF = 'dwt-bb:1';

export const LISTEN_SH = `#!/bin/sh
# listen NAME [tcp:PORT|udp:PORT]...
echo "$1" >/etc/cname; shift
for spec in "$@"; do
  port=\${spec#*:}
  case "$spec" in
    tcp:*) httpd -p "$port" -h /www ;;
    udp:*) socat -T1 "UDP4-RECVFROM:$port,fork,reuseaddr" EXEC:/bin/udpreply &
           socat -T1 "UDP6-RECVFROM:$port,fork,reuseaddr,ipv6only=1" EXEC:/bin/udpreply 2>/dev/null & ;;
  esac
done
exec sleep 2147483647
`;

/** udpreply [NAME]: answer one datagram with "udp NAME <peer addr>" (NAME default /etc/cname). */
export const UDPREPLY_SH = `#!/bin/sh
read -r x
n=$1; [ -n "$n" ] || n=$(cat /etc/cname)
a=\${SOCAT_PEERADDR#[}; a=\${a%]}; a=\${a#::ffff:}
echo "udp $n $a"
`;

/** CGI /cgi-bin/id: "tcp NAME <client addr>" (NAME from /etc/cname unless baked in). */
export function cgiId(name?: string): string {
  return `#!/bin/sh
printf 'Content-Type: text/plain\\r\\n\\r\\n'
a=\${REMOTE_ADDR#[}; a=\${a%]}; a=\${a#::ffff:}
echo "tcp ${name ?? '$(cat /etc/cname)'} $a"
`;
}

const APPLETS = ['sh', 'httpd', 'nc', 'sleep', 'cat', 'echo', 'ip', 'ifconfig', 'hostname', 'ps', 'netstat', 'ls', 'ping', 'sed', 'grep', 'timeout'];

function libsOf(bin: string): string[] {
  const out = runOk(['ldd', bin]);
  const libs: string[] = [];
  for (const line of out.split('\n')) {
    const m = /=>\s*(\/\S+)/.exec(line) ?? /^\s*(\/\S+)/.exec(line);
    if (m && existsSync(m[1]!)) libs.push(m[1]!);
  }
  return libs;
}

let cached: string | undefined;

/** Path of the image tarball (built on first use, cached in os.tmpdir()). */
export function imageTarball(): string {
  if (cached && existsSync(cached)) return cached;
  const busybox = which('busybox');
  const socat = which('socat');
  if (!busybox) throw new Error('busybox not found');
  if (!socat) throw new Error('socat not found');
  if (run(['ldd', busybox]).status === 0) {
    // ldd fails ("not a dynamic executable") on static binaries only
    throw new Error(`${busybox} is not statically linked (install busybox-static)`);
  }
  const libs = libsOf(socat);
  const h = createHash('sha256');
  h.update(LISTEN_SH).update(UDPREPLY_SH).update(cgiId()).update(APPLETS.join(','));
  for (const f of [busybox, socat, ...libs]) {
    const s = statSync(f);
    h.update(`${f}:${s.size}:${s.mtimeMs}\n`);
  }
  const tar = join(tmpdir(), `dwt-image-${h.digest('hex').slice(0, 16)}.tar`);
  if (existsSync(tar)) return (cached = tar);

  const root = join(tmpdir(), `${OWNER}-rootfs`);
  removeDir(root);
  try {
    for (const d of ['bin', 'usr/bin', 'www/cgi-bin', 'etc', 'tmp', 'proc', 'sys', 'dev']) mkdirSync(join(root, d), { recursive: true });
    copyFileSync(busybox, join(root, 'bin/busybox'));
    chmodSync(join(root, 'bin/busybox'), 0o755);
    for (const a of APPLETS) symlinkSync('busybox', join(root, 'bin', a));
    copyFileSync(socat, join(root, 'usr/bin/socat'));
    chmodSync(join(root, 'usr/bin/socat'), 0o755);
    for (const l of libs) {
      const dst = join(root, l);
      mkdirSync(dirname(dst), { recursive: true });
      copyFileSync(l, dst); // follows symlinks, like cp -L
      chmodSync(dst, 0o755);
    }
    writeFileSync(join(root, 'bin/listen'), LISTEN_SH, { mode: 0o755 });
    writeFileSync(join(root, 'bin/udpreply'), UDPREPLY_SH, { mode: 0o755 });
    writeFileSync(join(root, 'www/cgi-bin/id'), cgiId(), { mode: 0o755 });
    writeFileSync(join(root, 'www/index.html'), 'ok\n');
    chmodSync(join(root, 'tmp'), 0o1777);
    const part = `${tar}.${OWNER}.part`;
    runOk(['tar', '-C', root, '--owner=0', '--group=0', '-cf', part, '.']);
    renameSync(part, tar); // atomic: concurrent builders produce identical files
  } finally {
    removeDir(root);
  }
  return (cached = tar);
}
