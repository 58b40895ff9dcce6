"""ament_python package for imatching_online; also installable with pip (editable) outside a ROS distro.

torch, pypose and the other pip-only dependencies are deliberately not in install_requires: a plain
`torch` requirement would make pip fetch a CUDA build. Install them from requirements/ (make setup).
"""

from glob import glob

from setuptools import find_packages, setup

package_name = "imatching_online"

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
        ("share/" + package_name + "/launch", glob("launch/*.py")),
        ("share/" + package_name + "/config", glob("config/*")),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="banet-vo maintainers",
    maintainer_email="maintainers@banet-vo.dev",
    description="Online self-supervised matcher adaptation (iMatching) for ROS 2",
    license="MIT",
    entry_points={
        "console_scripts": [
            "imatching-train = imatching_online.train:main",
            "imatching-adapt = imatching_online.adapt_cli:main",
            "imatching_node = imatching_online.ros.entry:imatching_node",
        ],
        # `banet-vo-eval matching`: banet_vo's evaluation CLI finds its subcommands in this group.
        "banet_vo.eval_commands": ["matching = imatching_online.evaluation:add_parser"],
    },
)
