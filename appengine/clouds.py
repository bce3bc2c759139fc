"""Where users boot the provisioning machine: one line per cloud, with the generated file.

Each line fetches the permalink's document into the file the page's download names, then
creates the machine with that file as its user-data (Azure's `--custom-data`,
DigitalOcean's `--user-data-file`). Each flavour expects its own image, said with it.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass


@dataclass(frozen=True)
class CloudImage:
    """The image one cloud boots for one flavour, and what the user must know about it."""

    image: str
    note: str


@dataclass(frozen=True)
class CloudCommand:
    cloud: str
    image: CloudImage
    command: str


AZURE = {
    "cloud-init": CloudImage(
        "Debian:debian-12:12:latest", "Debian 12 from the Azure Marketplace (runs cloud-init)"
    ),
    "flatcar": CloudImage(
        "kinvolk:flatcar-container-linux-free:stable:latest",
        "Flatcar Container Linux stable (reads Ignition from custom data); accept its terms "
        "once: az vm image terms accept --urn kinvolk:flatcar-container-linux-free:stable:latest",
    ),
    "coreos-legacy": CloudImage(
        "<your-container-linux-image>",
        "CoreOS Container Linux is no longer published: give the image you keep",
    ),
}
DIGITALOCEAN = {
    "cloud-init": CloudImage("debian-12-x64", "Debian 12, a stock droplet image (runs cloud-init)"),
    "flatcar": CloudImage(
        "<flatcar-custom-image-id>",
        "Flatcar is not a stock droplet image: upload it once as a custom image with doctl "
        "compute image create flatcar-stable --region fra1 --image-url https://stable.release"
        ".flatcar-linux.net/amd64-usr/current/flatcar_production_digitalocean_image.bin.bz2",
    ),
    "coreos-legacy": CloudImage(
        "<your-container-linux-image-id>",
        "CoreOS Container Linux is no longer published: give the custom image you keep",
    ),
}


def commands(permalink: str, filename: str, cluster_name: str, flavour: str) -> list[CloudCommand]:
    """The Azure and DigitalOcean one-liners for this install's document."""
    fetch = f"curl -fsSL {shlex.quote(permalink)} -o {shlex.quote(filename)}"
    name = shlex.quote(f"{cluster_name}-provisioner")
    azure, droplet = AZURE[flavour], DIGITALOCEAN[flavour]
    return [
        CloudCommand(
            "Azure",
            azure,
            f"{fetch} && az vm create --resource-group <resource-group> --name {name} "
            f"--image {azure.image} --size Standard_B2s --admin-username vulcano "
            f"--generate-ssh-keys --custom-data {shlex.quote(filename)}",
        ),
        CloudCommand(
            "DigitalOcean",
            droplet,
            f"{fetch} && doctl compute droplet create {name} --image {droplet.image} "
            f"--size s-2vcpu-4gb --region <region> --ssh-keys <key-fingerprint> "
            f"--user-data-file {shlex.quote(filename)} --wait",
        ),
    ]
