"""Hostile inputs shared by the unit tests and the e2e suite (tests/e2e/test_mcp.py imports
this module): path traversal in every spelling, injection into the network tools' targets,
and archives built to escape their extraction directory."""

from __future__ import annotations

import io
import tarfile
import zipfile

# Paths a user might try, relative to their workspace; every one must be refused.
TRAVERSAL = [
    "..",
    "../",
    "../..",
    "../../..",
    "../../etc/passwd",
    "../" * 12 + "etc/passwd",
    "./../secret.txt",
    "a/../../secret.txt",
    "a/b/../../../secret.txt",
    "a/./../../secret.txt",
    "../1_evil/secret.txt",
    "../10/secret.txt",
    "../1evil",
    "../2/notes.txt",
    "..//..//etc",
    "subdir/../../..",
    "../../../../../../../../proc/self/environ",
    ".../../secret.txt",
    "../.",
    "./..",
    "./../..",
    "a/../..",
    "subdir/../../../etc",
    "x/../../../../../../root/.ssh/id_rsa",
    "../outside/secret.txt",
]
ABSOLUTE = [
    "/etc/passwd",
    "/",
    "//etc/passwd",
    "/root",
    "/proc/self/environ",
    "/dev/null",
    "/tmp",
    "~/secret",
    "~root/.ssh",
    "C:/Windows/win.ini",
    "/etc/../etc/shadow",
    "///etc//passwd",
    "/..",
    "/./etc",
    "~",
]
ENCODED = [
    "%2e%2e/secret.txt",
    "%2e%2e%2fsecret.txt",
    "%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
    "..%2fsecret.txt",
    "..%2F..%2Fetc%2Fpasswd",
    "%252e%252e%252fsecret.txt",
    "%25252e%25252e%25252fetc",
    "%2fetc%2fpasswd",
    "%2Fetc/passwd",
    "a/%2e%2e/%2e%2e/secret.txt",
    "%2e%2e",
    "%2e./secret.txt",
    ".%2e/secret.txt",
    "%2e%2e%5csecret.txt",
]
BACKSLASH_AND_CONTROL = [
    "..\\secret.txt",
    "..\\..\\etc\\passwd",
    "a\\..\\..\\b",
    "C:\\Windows\\win.ini",
    "a\x00b",
    "../\x00",
    "file\n../../etc",
    "\t",
    "a\rb",
    "name\x7f",
]
# The same escapes starting from inside a subdirectory.
NESTED = [f"subdir/{p}" for p in TRAVERSAL if p.startswith("..")] + [f"a/b/{p}" for p in ENCODED[:6]]
PATH_PAYLOADS = TRAVERSAL + ABSOLUTE + ENCODED + BACKSLASH_AND_CONTROL + NESTED

# Symlinks planted in the workspace (as if something put them there), by name -> target;
# "{outside}" is a directory next to the workspaces holding a sentinel file,
# "{sibling}" a sibling user-prefix directory (`<ws>/1_evil`).
SYMLINKS = {
    "link_etc": "/etc",
    "link_root": "/",
    "link_passwd": "/etc/passwd",
    "link_outside": "{outside}",
    "link_secret": "{outside}/secret.txt",
    "link_sibling": "{sibling}",
    "link_up": "..",
    "link_rel_up": "../../..",
    "nested/deeper/link_up2": "../../..",
    "link_proc": "/proc/self",
}
THROUGH_SYMLINKS = [
    "link_etc",
    "link_etc/passwd",
    "link_etc/evil.txt",
    "link_root",
    "link_root/etc/hostname",
    "link_passwd",
    "link_outside",
    "link_outside/secret.txt",
    "link_outside/new.txt",
    "link_secret",
    "link_sibling",
    "link_sibling/secret.txt",
    "link_up",
    "link_up/1_evil/secret.txt",
    "link_rel_up",
    "link_rel_up/etc/passwd",
    "nested/deeper/link_up2",
    "nested/deeper/link_up2/secret.txt",
    "link_proc/environ",
    "link_proc",
]

# Targets for network tools: option injection, shell metacharacters, URLs,
# control characters, malformed names. Every one must be refused before use.
INJECTION = [
    "-oProxyCommand=touch /tmp/pwned",
    "--help",
    "-c 100000",
    "-f",
    "-",
    "--",
    "-6",
    "-i0.000001",
    "example.com; id",
    "example.com && id",
    "example.com | id",
    "example.com || id",
    "$(id)",
    "`id`",
    "example.com\nid",
    "example.com\r\nQUIT",
    "example.com id",
    " example.com",
    "example.com ",
    "exa mple.com",
    "example..com",
    ".example.com",
    "-example.com",
    "example-.com",
    "example.com/../etc",
    "http://example.com",
    "example.com:22",
    "user@example.com",
    "'; DROP TABLE users; --",
    "${IFS}id",
    "%0aid",
    "example.com\x00.evil",
    "a" * 64 + ".com",
    "x." * 130 + "com",
    "*",
    "1.2.3.4.5",
    "127.0.0.1 -c 99999",
    "::1 -f",
    "[::1",
    "fe80::1%eth0",
    "<script>",
    "example.com#",
    "",
]
# Well-formed but not public: refused by the SSRF policy (tests allow 127.0.0.1 only).
NON_PUBLIC = [
    "10.0.0.1",
    "169.254.169.254",
    "0.0.0.0",
    "::1",
    "192.168.1.1",
    "::ffff:169.254.169.254",
    "100.64.0.1",
    "fd00::1",
]
BAD_URLS = [
    "file:///etc/passwd",
    "gopher://127.0.0.2:6379/_INFO",
    "ftp://example.com/",
    "http://169.254.169.254/latest/meta-data/",
    "http://10.0.0.1/",
    "http://[::1]/",
    "http://0.0.0.0/",
    "http://[::ffff:169.254.169.254]/",
    "http://user:pw@example.com/",
    "http://167772161/",
    "javascript:alert(1)",
    "http:///nohost",
    " http://example.com",
    "http://example.com\r\nX-Injected: 1",
]


# ---------------------------------------------------------------- hostile archives


def zip_with(members: list[tuple[str, bytes, int | None]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data, mode in members:
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            if mode is not None:
                info.external_attr = mode << 16
            zf.writestr(info, data)
    return buf.getvalue()


def tar_with(members: list[tuple[str, str, bytes | str]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, kind, payload in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                data = payload if isinstance(payload, bytes) else payload.encode()
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
                continue
            info.type = {
                "sym": tarfile.SYMTYPE,
                "hard": tarfile.LNKTYPE,
                "chr": tarfile.CHRTYPE,
                "fifo": tarfile.FIFOTYPE,
                "dir": tarfile.DIRTYPE,
            }[kind]
            if kind in ("sym", "hard"):
                info.linkname = str(payload)
            if kind == "chr":
                info.devmajor, info.devminor = 1, 3
            tf.addfile(info)
    return buf.getvalue()
