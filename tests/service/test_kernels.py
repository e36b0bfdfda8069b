"""Kernelspecs: written for the current version when it has ipykernel, rewritten on
rollback, absent (with the reason in the log) otherwise."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.servers import Service
from tests.service.conftest import api, wait_ready

NB = "dependencies: [python=3.11, ipykernel, dask=2025.12.0, distributed]\n"
NB2 = "dependencies: [python=3.11, ipykernel, dask=2026.1.2, distributed]\n"


def test_kernelspec_follows_current(service: Service) -> None:
    token = service.token("*=admin")
    with api(service, token) as c:
        first = wait_ready(c, "kern/nb", c.post("/api/v1/environments/kern/nb/versions",
                                                content=NB).json()["version"])["number"]
        second = wait_ready(c, "kern/nb", c.post("/api/v1/environments/kern/nb/versions",
                                                 content=NB2).json()["version"])["number"]
        env = c.get("/api/v1/environments/kern/nb").json()
        spec_path = service.root / "jupyter" / "kern" / "kernels" / "kern-nb" / "kernel.json"
        assert env["kernel"] == str(spec_path)
        spec = json.loads(spec_path.read_text())
        assert spec["display_name"] == f"kern/nb (v{second})"
        out = subprocess.run([spec["argv"][0], "-c", "import ipykernel, dask; "
                              "print(dask.__version__)"], capture_output=True, text=True,
                             timeout=120)
        assert out.stdout.strip() == "2026.1.2", out.stderr
        assert spec["argv"][1:3] == ["-m", "ipykernel_launcher"]
        r = c.post("/api/v1/environments/kern/nb/rollback", json={"version": first}).json()
        assert r["kernel"].startswith("kernel kern/nb (v1)")
        spec = json.loads(spec_path.read_text())
        assert spec["display_name"] == f"kern/nb (v{first})"
        out = subprocess.run([spec["argv"][0], "-c", "import dask; print(dask.__version__)"],
                             capture_output=True, text=True, timeout=120)
        assert out.stdout.strip() == "2025.12.0"
        plain = wait_ready(c, "kern/plain", c.post("/api/v1/environments/kern/plain/versions",
                                                   content="dependencies: [python=3.11]\n"
                                                   ).json()["version"])
        log = c.get(f"/api/v1/environments/kern/plain/versions/{plain['number']}/log").text
        assert "no kernel: neither ipykernel nor r-irkernel is in this environment" in log
        assert c.get("/api/v1/environments/kern/plain").json()["kernel"] is None
    assert not (Path(service.root) / "jupyter" / "kern" / "kernels" / "kern-plain").exists()


def test_kernel_runs_code_over_jupyter_protocol(service: Service) -> None:
    """Start the environment's kernel the way Jupyter does and execute code in it."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    token = service.token("*=admin")
    with api(service, token) as c:
        wait_ready(c, "kern/run", c.post("/api/v1/environments/kern/run/versions",
                                         content=NB).json()["version"])
    ksm = KernelSpecManager(kernel_dirs=[str(service.root / "jupyter" / "kern" / "kernels")])
    assert "kern-run" in ksm.find_kernel_specs()
    km = KernelManager(kernel_name="kern-run", kernel_spec_manager=ksm)
    km.start_kernel()
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=120)
        outputs: list[str] = []
        kc.execute_interactive("import dask, sys; print(dask.__version__, sys.prefix)",
                               timeout=120,
                               output_hook=lambda msg: outputs.append(
                                   msg["content"].get("text", "")))
        version, prefix = "".join(outputs).split()
        assert version == "2025.12.0"
        assert Path(prefix).resolve().parent == (service.root / "prefixes").resolve()
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def test_a_kernel_carries_the_specs_variables_and_the_configured_name(
        channel: Path, tmp_path: Path) -> None:
    """A spec's ``variables:`` reach the kernel's process (as ``conda activate`` would set
    them), the prefix's own PATH still wins, and ``kernel_display_name`` names it."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    svc = Service(tmp_path / "volume", channel,
                  extra_env={"ENVYARD_KERNEL_DISPLAY_NAME": "{namespace}/{name}"})
    svc.root.mkdir()
    svc.start()
    spec_text = NB + "variables:\n  GEO_DATA: /data/geo\n"
    try:
        with api(svc, svc.token("*=admin")) as c:
            refused = c.post("/api/v1/environments/team/geo/versions",
                             content=spec_text + "  PATH: /nowhere\n")
            assert refused.status_code == 422 and "reserved" in refused.text
            wait_ready(c, "team/geo", c.post("/api/v1/environments/team/geo/versions",
                                             content=spec_text).json()["version"])
            env = c.get("/api/v1/environments/team/geo").json()
            assert env["kernel_display_name"] == "team/geo"  # no version in the name
        ksm = KernelSpecManager(kernel_dirs=[str(svc.root / "jupyter" / "team" / "kernels")])
        km = KernelManager(kernel_name="team-geo", kernel_spec_manager=ksm)
        km.start_kernel()
        kc = km.client()
        kc.start_channels()
        try:
            kc.wait_for_ready(timeout=120)
            out: list[str] = []
            kc.execute_interactive(
                "import os; print(os.environ['GEO_DATA'], os.environ['PATH'].split(':')[0])",
                timeout=120, output_hook=lambda msg: out.append(msg["content"].get("text", "")))
            value, first_path = "".join(out).split()
            assert value == "/data/geo"
            assert first_path.endswith("/bin")
        finally:
            kc.stop_channels()
            km.shutdown_kernel(now=True)
    finally:
        svc.stop()


def test_a_kernel_name_template_with_other_fields_is_refused() -> None:
    import pydantic

    from envyard.service.settings import Settings

    with pytest.raises(pydantic.ValidationError, match="kernel_display_name"):
        Settings(kernel_display_name="{name.__class__}")


def test_a_reserved_variable_on_the_volume_does_not_reach_the_kernel(tmp_path: Path) -> None:
    """The state file is on the volume and older prefixes were parsed by older rules: the
    kernel drops what a spec may no longer set (checked where used, not only at the door)."""
    from envyard.builder.kernels import write_kernelspecs

    prefix = tmp_path / "p"
    (prefix / "conda-meta").mkdir(parents=True)
    (prefix / "conda-meta" / "ipykernel-7.4.0-py_0.json").write_text("{}")
    (prefix / "conda-meta" / "state").write_text(json.dumps({"env_vars": {
        "ENVYARD_SERVER": "http://evil.example", "LD_PRELOAD": "/tmp/x.so",
        "https_proxy": "http://evil.example", "GDAL_DATA": "/share/gdal"}}))
    path = write_kernelspecs(tmp_path / "jupyter", "geo", "maps", 1, prefix)["python"]
    env = json.loads(path.read_text())["env"]
    assert env["GDAL_DATA"] == "/share/gdal"
    assert not {"ENVYARD_SERVER", "LD_PRELOAD", "https_proxy"} & set(env)


def test_an_environment_with_irkernel_gets_an_r_kernel(tmp_path: Path) -> None:
    """r-irkernel in the prefix: an R kernel beside the python one, with the same env and
    name template; a version without it (a rollback) takes the R kernel away. (No R can
    be installed here, so it is not started: the kernelspec is what Jupyter runs.)"""
    from envyard.builder.kernels import read_kernelspec, write_kernelspecs

    both, python_only = tmp_path / "v1", tmp_path / "v2"
    for prefix in (both, python_only):
        (prefix / "conda-meta").mkdir(parents=True)
        (prefix / "conda-meta" / "ipykernel-7.4.0-py_0.json").write_text("{}")
        (prefix / "conda-meta" / "state").write_text('{"env_vars": {"GEO": "1"}}')
    (both / "conda-meta" / "r-irkernel-1.3.2-r44hc72bb7e_0.json").write_text("{}")
    jupyter = tmp_path / "jupyter"
    written = write_kernelspecs(jupyter, "geo", "maps", 1, both, "{namespace}/{name}")
    assert set(written) == {"python", "R"}
    assert written["R"].parent.name == "geo-maps-r"
    r = read_kernelspec(jupyter, "geo", "maps", "R")
    assert r is not None and r["language"] == "R" and r["display_name"] == "geo/maps (R)"
    assert r["argv"] == [str(both / "bin" / "R"), "--slave", "-e", "IRkernel::main()",
                         "--args", "{connection_file}"]
    assert r["env"] == {"GEO": "1", "CONDA_PREFIX": str(both),
                        "PATH": f"{both}/bin:/usr/local/bin:/usr/bin:/bin"}
    assert set(write_kernelspecs(jupyter, "geo", "maps", 2, python_only)) == {"python"}
    assert read_kernelspec(jupyter, "geo", "maps", "R") is None
    assert not (jupyter / "geo" / "kernels" / "geo-maps-r").exists()


def test_a_kernel_name_another_environment_holds_is_left_alone(tmp_path: Path) -> None:
    """Found by review: the R kernel of 'team/foo' and the python kernel of 'team/foo-r'
    share the name 'team-foo-r': each overwrote the other, and foo's next version without
    R deleted foo-r's kernel. The name's first holder keeps it."""
    from envyard.builder.kernels import read_kernelspec, remove_kernelspecs, write_kernelspecs

    r_too, python = tmp_path / "foo", tmp_path / "foo-r"
    for prefix in (r_too, python):
        (prefix / "conda-meta").mkdir(parents=True)
        (prefix / "conda-meta" / "ipykernel-7.4.0-py_0.json").write_text("{}")
    (r_too / "conda-meta" / "r-irkernel-1.3.2-r44_0.json").write_text("{}")
    jupyter = tmp_path / "jupyter"
    assert set(write_kernelspecs(jupyter, "team", "foo-r", 1, python)) == {"python"}
    assert set(write_kernelspecs(jupyter, "team", "foo", 1, r_too)) == {"python"}
    held = read_kernelspec(jupyter, "team", "foo-r")
    assert held is not None and held["argv"][0] == str(python / "bin" / "python")
    assert read_kernelspec(jupyter, "team", "foo", "R") is None  # not foo-r's kernel
    (r_too / "conda-meta" / "r-irkernel-1.3.2-r44_0.json").unlink()
    write_kernelspecs(jupyter, "team", "foo", 2, r_too)
    remove_kernelspecs(jupyter, "team", "foo")
    assert read_kernelspec(jupyter, "team", "foo-r") is not None  # still there
