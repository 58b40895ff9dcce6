"""banet_vo.ros.topics: the output names the node publishes and its listeners resolve, and where a
camera_info sits beside its image."""

from banet_vo.data import compressed_image
from banet_vo.ros import topics


def test_output_topics_resolve_under_the_node_and_its_namespace():
    assert topics.private(topics.ODOMETRY) == "~/odometry"
    assert topics.output_topic(topics.ODOMETRY) == "/banet_vo/odometry"
    assert topics.output_topic(topics.DEPTH_IMAGE, "/robot1/") == "/robot1/banet_vo/depth/image"
    assert topics.output_topic(topics.STATUS, "/robot1", node_name="vo") == "/robot1/vo/status"
    assert len(set(topics.OUTPUTS)) == len(topics.OUTPUTS)


def test_camera_info_sits_beside_its_image_as_image_transport_expects():
    assert topics.camera_info_beside("/camera/image_raw") == "/camera/camera_info"
    assert topics.camera_info_beside("/zed/left/image_rect_color/") == "/zed/left/camera_info"
    assert topics.camera_info_beside("/image") == "/camera_info"


def test_a_relative_image_topic_gives_a_relative_camera_info_beside_it():
    # namespace:=camera image:=image_raw reads /camera/image_raw: its camera_info is /camera/camera_info,
    # so the remap must stay relative ("/camera_info" would be the root's)
    assert topics.camera_info_beside("image_raw") == "camera_info"
    assert topics.camera_info_beside("left/image_raw") == "left/camera_info"
    assert topics.camera_info_beside("~/image") == "~/camera_info"


def test_the_launch_files_expression_gives_the_same_camera_info():
    image = object()  # stands for LaunchConfiguration("image"), which launch substitutes by its text
    for topic in (
        "/camera/image_raw",
        "/zed/left/image_rect_color/",
        "/image",
        "image_raw",
        "left/image_raw",
        "/cam/image_raw/compressed",
        "image_raw/compressed/",
    ):
        parts = topics.camera_info_beside_launch(image)
        expression = "".join(topic if part is image else part for part in parts)
        # what PythonExpression does with it, and the camera_info the node picks for that image by itself
        expected = topics.camera_info_beside(compressed_image.base_topic(topic))
        assert eval(expression) == expected, topic
    assert expected == "camera_info"  # image_raw's namespace, not the transport's
