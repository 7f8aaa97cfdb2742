"""The sources the front end's "RAG corpus" page offers, and what each one reads.

Web-doc sources read public pages: a few starting pages of their own, pages built from the
request's lists (a Python library's page for each of `python_libraries`, ...) and, for the
search-like ones, a results page per keyword; `extra_urls` are read under the first web-doc
source of a job. `local_docs` and `ansible_playbooks` read files under the operator's
RAG_LOCAL_ROOTS only. `uploads` holds each user's own uploaded documents (POST
/api/rag/documents), visible to them alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import quote, quote_plus

WEB, LOCAL, UPLOAD = "web", "local", "upload"


@dataclass(frozen=True)
class Source:
    id: str
    name: str
    kind: str  # web, local, upload
    seeds: tuple[str, ...] = ()
    # {item} filled from the request's list `items` (python_libraries, ...), or from keywords.
    item_url: str = ""
    items: str = ""  # the request field whose entries fill item_url
    keyword_url: str = ""
    files: tuple[str, ...] = field(default=())  # file name endings a local source reads


SOURCES: dict[str, Source] = {
    s.id: s
    for s in (
        Source("nextjs_docs", "Next.js documentation", WEB, ("https://nextjs.org/docs",),
               keyword_url="https://nextjs.org/docs/app/api-reference/functions/{item}"),
        Source("stack_overflow", "Stack Overflow", WEB, (),
               keyword_url="https://stackoverflow.com/search?q={item}"),
        Source("github", "GitHub", WEB, (), keyword_url="https://github.com/search?q={item}&type=repositories"),
        Source("python_docs", "Python documentation", WEB,
               ("https://docs.python.org/3/tutorial/index.html", "https://docs.python.org/3/library/index.html"),
               item_url="https://docs.python.org/3/library/{item}.html", items="python_libraries"),
        Source("docker_docs", "Docker documentation", WEB, ("https://docs.docker.com/get-started/docker-overview/",),
               item_url="https://docs.docker.com/reference/cli/docker/{item}/", items="docker_topics"),
        Source("kubernetes_docs", "Kubernetes documentation", WEB, ("https://kubernetes.io/docs/concepts/overview/",),
               item_url="https://kubernetes.io/docs/concepts/{item}/", items="kubernetes_topics"),
        Source("mitre_attack", "MITRE ATT&CK", WEB, ("https://attack.mitre.org/tactics/enterprise/",),
               keyword_url="https://attack.mitre.org/techniques/{item}/"),
        Source("owasp_docs", "OWASP Cheat Sheets", WEB, ("https://cheatsheetseries.owasp.org/IndexTopTen.html",),
               keyword_url="https://cheatsheetseries.owasp.org/cheatsheets/{item}_Cheat_Sheet.html"),
        Source("owasp_top10", "OWASP Top 10", WEB, ("https://owasp.org/Top10/",)),
        Source("nist_csf", "NIST Cybersecurity Framework", WEB, ("https://www.nist.gov/cyberframework",)),
        Source("cis_benchmarks", "CIS Benchmarks", WEB, ("https://www.cisecurity.org/cis-benchmarks",)),
        Source("nvd_nist", "NVD (NIST)", WEB, (),
               keyword_url="https://nvd.nist.gov/vuln/search/results?form_type=Basic&query={item}"),
        Source("sans_reading_room", "SANS white papers", WEB, ("https://www.sans.org/white-papers/",)),
        Source("local_docs", "Local documents", LOCAL,
               files=(".md", ".markdown", ".txt", ".rst", ".html", ".htm", ".pdf", ".docx")),
        Source("ansible_playbooks", "Ansible playbooks", LOCAL, files=(".yml", ".yaml")),
        Source("uploads", "Your uploaded documents", UPLOAD),
    )
}  # fmt: skip

# The request's per-source lists (the page sends each only when it is not empty).
LISTS = ("keywords", "extra_urls", "python_libraries", "docker_topics", "kubernetes_topics", "ansible_paths")


def _fill(template: str, item: str) -> str:
    encode = quote_plus if "?" in template.split("{item}")[0] else quote
    return template.replace("{item}", encode(item.strip(), safe=""))


def web_targets(source: Source, params: dict[str, list[str]], extra_urls: list[str], limit: int) -> list[str]:
    """The pages a job reads for a web-doc source, deduplicated, at most `limit`."""
    urls = list(source.seeds)
    if source.item_url and source.items:
        urls += [_fill(source.item_url, item) for item in params.get(source.items, [])]
    if source.keyword_url:
        urls += [_fill(source.keyword_url, kw) for kw in params.get("keywords", [])]
    urls += extra_urls
    return list(dict.fromkeys(urls))[:limit]
