"""The local Hub server answers unmodified huggingface_hub like the Hub: metadata, hashes, ranges, errors, gating."""

import hashlib
import os
import subprocess
from pathlib import Path

import httpx2
import pytest

REPO = "nvidia/PhysicalAI-Autonomous-Vehicles"


def _files(root):
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if not name.startswith("."):
                full = os.path.join(dirpath, name)
                out[os.path.relpath(full, root).replace(os.sep, "/")] = full
    return out


def _git_hash_object(path):
    """git's own blob id of a file (an independent implementation of the hash)."""
    return subprocess.run(["git", "hash-object", "--no-filters", path], capture_output=True, text=True).stdout.strip()


def test_metadata_matches_the_files(hub_server, use_hub, synthetic_repo):
    """HEAD /resolve through huggingface_hub: commit, ETag (git sha1 or sha256) and size of every file."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    use_hub(hub_server)
    files = _files(synthetic_repo.root)
    assert set(files) == set(synthetic_repo.files)
    for rel, full in files.items():
        meta = get_hf_file_metadata(hf_hub_url(REPO, rel, repo_type="dataset"))
        assert meta.commit_hash == hub_server.commit
        assert meta.size == os.path.getsize(full)
        if rel.endswith((".zip", ".parquet")):
            assert meta.etag == hashlib.sha256(Path(full).read_bytes()).hexdigest()
        else:
            assert meta.etag == _git_hash_object(full)


def test_tree_paths_info_revision_and_refs(synthetic_repo, use_hub):
    """Tree listing (paginated 2 per page), paths-info, revision info and refs agree with the directory."""
    from huggingface_hub import HfApi
    from huggingface_hub.hf_api import RepoFile, RepoFolder

    from pipeline.standins.hub_server import serve_repo

    files = _files(synthetic_repo.root)
    with serve_repo(synthetic_repo.root, page_size=2) as server:
        use_hub(server)
        api = HfApi()
        tree = list(api.list_repo_tree(REPO, repo_type="dataset", recursive=True))
        assert server.counts[("GET", "tree")] == -(-len(tree) // 2)  # every page fetched through Link: next
        assert {e.path for e in tree if isinstance(e, RepoFile)} == set(files)
        assert {e.path for e in tree if isinstance(e, RepoFolder)} == {
            "camera",
            "camera/camera_front_wide_120fov",
            "labels",
            "labels/egomotion",
            "metadata",
        }
        sizes = {e.path: e.size for e in tree if isinstance(e, RepoFile)}
        assert sizes == {rel: os.path.getsize(full) for rel, full in files.items()}
        lfs = {e.path: e.lfs.sha256 for e in tree if isinstance(e, RepoFile) and e.lfs is not None}
        assert lfs == {
            rel: hashlib.sha256(Path(full).read_bytes()).hexdigest()
            for rel, full in files.items()
            if rel.endswith((".zip", ".parquet"))
        }
        top = list(api.list_repo_tree(REPO, path_in_repo="labels", repo_type="dataset"))
        assert [e.path for e in top] == ["labels/egomotion"]

        info = api.get_paths_info(REPO, ["features.csv", "labels", "no/such/file"], repo_type="dataset")
        assert [(type(e).__name__, e.path) for e in info] == [("RepoFile", "features.csv"), ("RepoFolder", "labels")]
        assert info[0].blob_id == _git_hash_object(files["features.csv"])

        ds = api.dataset_info(REPO, files_metadata=True)
        assert ds.sha == server.commit
        assert sorted(s.rfilename for s in ds.siblings) == sorted(files)
        refs = api.list_repo_refs(REPO, repo_type="dataset")
        assert [(b.name, b.target_commit) for b in refs.branches] == [("main", server.commit)]


def test_ranges(hub_server, synthetic_repo):
    rel = "labels/egomotion/egomotion.chunk_0000.zip"
    data = (synthetic_repo.root / rel).read_bytes()
    url = f"{hub_server.endpoint}/datasets/{REPO}/resolve/main/{rel}"
    with httpx2.Client() as client:
        r = client.get(url, headers={"Range": "bytes=100-"})
        assert r.status_code == 206 and r.content == data[100:]
        assert r.headers["content-range"] == f"bytes 100-{len(data) - 1}/{len(data)}"
        r = client.get(url, headers={"Range": "bytes=10-19"})
        assert r.status_code == 206 and r.content == data[10:20]
        r = client.get(url, headers={"Range": "bytes=-7"})
        assert r.status_code == 206 and r.content == data[-7:]
        r = client.get(url, headers={"Range": f"bytes={len(data)}-"})
        assert r.status_code == 416
        r = client.get(url)
        assert r.status_code == 200 and r.content == data and "x-xet-hash" not in r.headers


def test_not_found_errors(hub_server, use_hub):
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import RemoteEntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

    use_hub(hub_server)
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("nvidia/other", "features.csv", repo_type="dataset")
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(REPO, "features.csv", repo_type="dataset", revision="v9")
    with pytest.raises(RemoteEntryNotFoundError):
        hf_hub_download(REPO, "no_such.csv", repo_type="dataset")


def test_gated_mode(fresh_hub_server, use_hub, tmp_path):
    from huggingface_hub import HfApi, hf_hub_download
    from huggingface_hub.errors import GatedRepoError

    server = use_hub(fresh_hub_server)
    server.token = "hf_right"
    with pytest.raises(GatedRepoError) as err:
        hf_hub_download(REPO, "features.csv", repo_type="dataset", local_dir=tmp_path / "a")
    assert err.value.response.status_code == 401
    with pytest.raises(GatedRepoError) as err:
        HfApi(token="hf_wrong").dataset_info(REPO)
    assert err.value.response.status_code == 403
    path = hf_hub_download(REPO, "features.csv", repo_type="dataset", local_dir=tmp_path / "b", token="hf_right")
    assert Path(path).read_bytes() == (server.root / "features.csv").read_bytes()


def test_injected_cut_drops_the_connection(fresh_hub_server):
    rel = "camera/camera_front_wide_120fov/camera_front_wide_120fov.chunk_0000.zip"
    url = f"{fresh_hub_server.endpoint}/datasets/{REPO}/resolve/main/{rel}"
    fresh_hub_server.inject_cut(rel, 1000)
    with httpx2.Client() as client:
        with pytest.raises(httpx2.RemoteProtocolError):
            client.get(url)
        assert client.get(url).content == (fresh_hub_server.root / rel).read_bytes()  # only once
    assert [(r.method, r.kind, r.status) for r in fresh_hub_server.data_gets()] == [("GET", "resolve", 200)] * 2
