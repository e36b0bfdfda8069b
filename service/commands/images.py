"""``envyard image``: turn images on or off for a namespace or environment, build one for
a version on the service, or build and push one from a local prefix (no daemon)."""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import os
import time
from pathlib import Path
from typing import Any

from envyard.service.console import emit_json, info


def _target(value: str) -> tuple[str, str | None]:
    from envyard.builder.errors import SpecError

    ns, _, name = value.partition("/")
    if not ns or "/" in name:
        raise SpecError(f"{value!r}: expected NAMESPACE or NAMESPACE/NAME")
    return ns, name or None


def cmd_image_switch(args: argparse.Namespace) -> None:
    from envyard.service.commands.remote import client_for

    ns, name = _target(args.target)
    enabled = {"enable": True, "disable": False, "inherit": None}[args.image_command]
    if name is None and enabled is None:
        from envyard.builder.errors import SpecError

        raise SpecError("only an environment can inherit its namespace's setting")
    path = f"/api/v1/namespaces/{ns}/images" if name is None else \
        f"/api/v1/environments/{ns}/{name}/images"
    result = client_for(args).request("PUT", path, json={"enabled": enabled}).json()
    emit_json(result) if args.json else print(
        f"images for {args.target}: {'inherited' if enabled is None else args.image_command + 'd'}")


def cmd_image_build(args: argparse.Namespace) -> None:
    from envyard.service.commands.remote import client_for, version_ref

    ns, name, number = version_ref(args.ref)
    if number is None:
        from envyard.builder.errors import SpecError

        raise SpecError("image build needs NAMESPACE/NAME/VERSION")
    client = client_for(args)
    url = f"/api/v1/environments/{ns}/{name}/versions/{number}"
    client.request("POST", f"{url}/image")
    info(f"building the image of {ns}/{name} version {number}")
    image: dict[str, Any] = {"state": "building"}
    while args.wait and image.get("state") == "building":
        time.sleep(0.5)
        image = client.get(url).get("image") or image
    if args.json:
        emit_json(image)
    elif image.get("state") == "ready":
        print(f"{image['reference']}  {image['digest']}  ({image['bytes_pushed']} bytes sent)")
    elif image.get("state") == "failed":
        from envyard.builder.errors import ImageError

        raise ImageError(image.get("error", "the image build failed"))


def cmd_image_push(args: argparse.Namespace) -> None:
    from envyard.builder.errors import ImageError
    from envyard.builder.image import ImageSpec, build_image, push_image
    from envyard.builder.install import STAMP
    from envyard.builder.oci import BlobStore, ImageRef
    from envyard.builder.registry import Registry

    prefix: Path = args.prefix.resolve()
    if not (prefix / "conda-meta").is_dir():
        raise ImageError(f"{prefix} is not a conda environment (no conda-meta/)")
    to = ImageRef.parse(args.to)
    stamp = prefix / STAMP
    created = dt.datetime.fromtimestamp((stamp if stamp.exists() else prefix / "conda-meta"
                                         ).stat().st_mtime, dt.UTC)
    lock_sha = hashlib.sha256(stamp.read_bytes()).hexdigest() if stamp.exists() else ""
    spec = ImageSpec(base=args.base, dest=args.dest or f"/opt/envyard/envs/{prefix.name}",
                     title=prefix.name, lock_sha256=lock_sha, created=created,
                     max_layers=args.max_layers)
    from envyard.builder.layout import envyard_home

    home = envyard_home()
    store = BlobStore(args.store or home / "images")
    from envyard.builder.errors import ConfigError

    if "ENVYARD_IMAGE_REGISTRY_PASSWORD" in os.environ:
        raise ConfigError("ENVYARD_IMAGE_REGISTRY_PASSWORD is now "
                          "ENVYARD_IMAGE__REGISTRY_PASSWORD (two underscores)")
    password = os.environ.get("ENVYARD_IMAGE__REGISTRY_PASSWORD")
    start = time.perf_counter()
    with Registry(to.registry, username=args.username, password=password,
                  insecure=args.insecure) as target, \
            Registry(ImageRef.parse(args.base).registry, insecure=args.insecure) as base:
        image = build_image(prefix, spec, store, base,
                            progress=lambda i, n: info(f"layers {i}/{n}"))
        sent = push_image(image, store, target, to.repository, [to.reference], base)
    result = {"reference": str(to), "digest": image.manifest.digest, "bytes_sent": sent,
              "layers": len(image.layers), "seconds": round(time.perf_counter() - start, 3)}
    emit_json(result) if args.json else print(f"{to}  {image.manifest.digest}  "
                                              f"({sent} bytes sent)")


def register(sub: Any) -> None:
    from envyard.service.commands.remote import add_remote_options

    image = sub.add_parser("image", help="OCI images of environments").add_subparsers(
        dest="image_command", required=True, metavar="ACTION")
    for action, text in (("enable", "build an image for every new version"),
                         ("disable", "build no images"),
                         ("inherit", "an environment follows its namespace again")):
        p = image.add_parser(action, help=f"{text} (NAMESPACE or NAMESPACE/NAME)")
        p.add_argument("target", metavar="NAMESPACE[/NAME]")
        add_remote_options(p)
        p.set_defaults(func=cmd_image_switch)
    p = image.add_parser("build", help="build (or retry) the image of a ready version",
                         description="The service builds the image in the background; "
                         "--wait follows it to the end.")
    p.add_argument("ref", metavar="NAMESPACE/NAME/VERSION")
    p.add_argument("--wait", action="store_true")
    add_remote_options(p)
    p.set_defaults(func=cmd_image_build)
    p = image.add_parser("push", help="build an image from a local prefix and push it",
                         description="No daemon: the base is pulled by reference, the "
                         "environment becomes layers grouped by package (paths rewritten to "
                         "--dest), and only what the registry lacks is uploaded. The password "
                         "comes from ENVYARD_IMAGE__REGISTRY_PASSWORD.")
    p.add_argument("prefix", type=Path, help="an environment (e.g. from `envyard build`)")
    p.add_argument("--base", required=True, help="base image reference")
    p.add_argument("--to", required=True, help="REGISTRY/REPOSITORY:TAG to push")
    p.add_argument("--dest", help="path of the environment in the image "
                   "(default /opt/envyard/envs/<prefix name>)")
    p.add_argument("--username", help="registry user name")
    p.add_argument("--insecure", action="store_true",
                   help="allow plain HTTP to a registry that is not on loopback")
    p.add_argument("--max-layers", type=int, default=64)
    p.add_argument("--store", type=Path, help="blob store (default $ENVYARD_HOME/images, "
                   "ENVYARD_HOME being ~/.envyard unless set)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_image_push)
