"""ament_python package for banet_vo; also installable with pip (editable) outside a ROS distro.

torch, pypose and the other pip-only dependencies are deliberately not in install_requires: a plain
`torch` requirement would make pip fetch a CUDA build. Install them from requirements/ (make setup).
"""

from glob import glob
from pathlib import Path

from setuptools import find_packages, setup

package_name = "banet_vo"
# The shipped models (BA-Nets and matchers, 1-4 MB each) and their cards live in the repository's models/
# (DESIGN.md's layout); every file there is installed beside config/ and launch/, where
# banet_vo.model.shipped finds the default one and a `models/NAME` given from outside the checkout.
MODELS = Path("..", "..", "..", "models")
SHIPPED_MODEL_FILES = sorted(str(path) for path in MODELS.iterdir() if path.is_file())

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
        ("share/" + package_name + "/launch", glob("launch/*.launch.py")),
        ("share/" + package_name + "/config", glob("config/*.yaml")),
        ("share/" + package_name + "/rviz", glob("rviz/*.rviz")),
        ("share/" + package_name + "/models", SHIPPED_MODEL_FILES),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="banet-vo maintainers",
    maintainer_email="maintainers@banet-vo.dev",
    description="BA-Net dense visual odometry for ROS 2",
    license="MIT",
    entry_points={
        "console_scripts": [
            "banet-vo-synth = banet_vo.data.synthetic.cli:main",
            "banet-vo-bag = banet_vo.data.bags_cli:main",
            "banet-vo-play = banet_vo.ros.entry:banet_vo_play",
            "banet-vo-eval = banet_vo.evaluation.cli:main",
            "banet-vo-train = banet_vo.train.cli:main",
            "banet-vo-adapt-stream = banet_vo.train.stream_adapt:main",
            "banet-vo-run = banet_vo.ros.entry:banet_vo_run",
            "vo_node = banet_vo.ros.entry:vo_node",
            "vo_lifecycle_node = banet_vo.ros.entry:vo_lifecycle_node",
        ],
    },
)
