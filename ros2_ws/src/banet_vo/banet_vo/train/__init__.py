"""banet_vo.train."""
