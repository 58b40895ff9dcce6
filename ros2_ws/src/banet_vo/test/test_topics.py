"""banet_vo.ros.topics: the output names the node publishes and its listeners resolve."""

from banet_vo.ros import topics


def test_output_topics_resolve_under_the_node_and_its_namespace():
    assert topics.private(topics.ODOMETRY) == "~/odometry"
    assert topics.output_topic(topics.ODOMETRY) == "/banet_vo/odometry"
    assert topics.output_topic(topics.DEPTH_IMAGE, "/robot1/") == "/robot1/banet_vo/depth/image"
    assert topics.output_topic(topics.STATUS, "/robot1", node_name="vo") == "/robot1/vo/status"
    assert len(set(topics.OUTPUTS)) == len(topics.OUTPUTS)
