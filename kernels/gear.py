"""The frozen 256-entry gear table of the content-defined chunker.

Every chunk boundary, and so every chunk id and version id in every store,
depends on these numbers: they must never change. ``tests/test_gear_golden.py``
freezes them.

Procedure (re-runnable with :func:`generate_gear_table`): entry ``i`` is the
first 8 bytes, read little-endian, of the BLAKE3 key derivation (``derive_key``
mode) of the single byte ``i`` under the context string
``"mlops-engine gear table v1"``. BLAKE3's output is uniform, so every bit of
every entry is an unbiased coin, which is what the gear hash needs for cut
points to fall with probability 2**-bits at each position.
"""

import numpy as np

GEAR_CONTEXT = "mlops-engine gear table v1"

# fmt: off
_GEAR_VALUES = (
    0xfa1771cbb8b4854c, 0x49aa0acbf2c271f7, 0x9bb923ee7d58c51b, 0x4567a6a0a81443dc,
    0xbd6667dfe97dbb8a, 0x025b3c21a66c98c7, 0x86ffd454308e35e7, 0xd57089febddb9cc4,
    0x0445f3ccfd5f4656, 0xb61de934461791d7, 0x3345cb49243ca8cb, 0xb93ebcfdb87deb22,
    0x2f65bfac3d16d32d, 0xc88ad785e1741d9e, 0x039d6bc4b9ba2896, 0x8f80e33287a809be,
    0x57acf0f3ce207ad2, 0xb3fe3ba71e2eebce, 0xd24cef75a237e27d, 0x85d9c05c934ad895,
    0x3678512dbc19b24e, 0xd800bdb95e44665e, 0xd3f62c2821931363, 0x5fd9ef067c3e7930,
    0xc8f47dfc40b4c94e, 0x2ec3af2b1223a2b0, 0xd6915432032bfc36, 0xab109031066456bb,
    0x08ebf9232c7409c0, 0x25ded85099241730, 0xd5a1fc4515509bcc, 0x0a198320b6541c73,
    0xd38755ab78398ed5, 0x75f1e7dd23563dfc, 0xe7bca17e391f2fc1, 0x537f2fc7be3afc09,
    0x0e5160d8528841aa, 0x0cb9f4840a97e04d, 0xb257d1707b0ea4a4, 0x79c71bd492048450,
    0x3f6c652e3d2c78c7, 0x6d23d9ebb2ecadf8, 0xb2ef18453d89011e, 0x636918778e3d3337,
    0xd2d523d43fc2bf01, 0xa4675d197b769e6c, 0x314bcca1a403be38, 0xc52b839010836fe9,
    0xb0c0443c926ee6b2, 0xdb9808fe5b22d8de, 0xf36a65ddf112bd4d, 0xf97d78232317ff54,
    0x5b2b1a83d22531a8, 0xe284cc9086e26ac0, 0x798a1978a697fe87, 0xa3b178c96cfd39a3,
    0xfc02c2b5d08e86a4, 0xf59d6f7399979607, 0x7a97f42af394c234, 0xb8e50d8d4b33ebe0,
    0x09b92e1cae82ce48, 0x6d39fe0f974dd45e, 0x76ca24c662d9fa2c, 0xd8415999b4b5e431,
    0x73179c1f36759636, 0xf32811e16f50d150, 0x6329dc79ad1e6e09, 0x3cfbffb91d083651,
    0xb24a493184c943e5, 0x32810eaeae883b3d, 0x6c30e17759703718, 0xfbe7818de4917071,
    0x140d14b270309b1a, 0x3c7d0ca4ef9f3018, 0x32f72c9967dc8273, 0x78ad378c04ac01c6,
    0x6fa850870272fa8b, 0x727d54870f3daaa9, 0xc030b264025db139, 0xec1a7d389cbb9bf0,
    0xcadea76497a2811a, 0x647c2ac8e8d5dedb, 0xfd454bffe9c391d9, 0x5f7026dfd1e1f80a,
    0x015f48976c4e265f, 0x93ef191e0cbd47c8, 0x77582a49c53394ee, 0xdec5b8ac62b110a0,
    0x830fa24ed84c8686, 0x32c8a533ba09b82e, 0x6ff19cb4832155a7, 0xa117acda4c53f3b9,
    0xd7d10c36d32c0bb0, 0xf356433640b0afe8, 0x4e484d9842590bc0, 0x23d8999d23348cce,
    0xcca34d8aff969a30, 0x0ebae68918320b65, 0xafca0322ea8e5dae, 0x3cd3cf48763ab83d,
    0x716f8e9b5868497d, 0xd729ece783edbb9a, 0x5c1ed2a15c929ac9, 0x17460eefa7ba1bf5,
    0x5607be0f69c831a2, 0x9a19405c4a4aa5d1, 0x9e889afdf65ceef6, 0x02c567db40b499cd,
    0xb7f5cf6b55cfe053, 0x2ba4d9db87c40332, 0xc4f739bc9c63957d, 0x7d5aacd00febab3e,
    0xd4d5eac90ae07036, 0x9db84ad90763ec29, 0x97526b7b0f33e4f5, 0x1b28fc0d3de0a277,
    0x82364ecf4699062a, 0x69ac531d1aecf3c4, 0xe068ddf5b11ccaa0, 0x10dd36f4ebf4893e,
    0xcd29d0e8d08552af, 0x551e9800c69abac3, 0x70a14595d59975d9, 0xe9ba4d7ae359a626,
    0x3bc203a5d2c05f32, 0x2720ec351783cb1d, 0x0c6c167452330fe1, 0x338fb590feca7872,
    0xe24e1c68e96fbc38, 0x81be5f7432792dfe, 0x84320323a1af0fcb, 0x75a4cf46b912c7ac,
    0x6090113f2a05999f, 0xa88886e20fed7f0e, 0xd4d83217f6b08255, 0x379587d387cf8805,
    0x2771c1cb7713274f, 0xb4a4b40d6dd974b6, 0xda1050596d23ec76, 0x407adc8fdabcd4ce,
    0xe7c01aa90a74ac8c, 0x8f373195586e5094, 0xc35ebabb5c2ba93b, 0xaba04fba8250f17c,
    0x885f9e27040d8a59, 0x110fc2eb4e434a4a, 0x958e2854a024c941, 0xe0bdd8ff6f019e63,
    0xbb368c1e8c4cae4e, 0x105f385b6a939d12, 0x38aa2fc79c112e7a, 0x077e1135cc1af4be,
    0x4b1c283847c01b8a, 0xaf76c46dea8681f3, 0x26dfe4178d3d28d7, 0x4ebae8a84675980d,
    0x9fe17b7dd11770be, 0xe3fd793e684c1919, 0xf3398fbe538ec11c, 0x404deea2b3977fc8,
    0x359b4d3168c5a6e3, 0xdf5e4804442fe969, 0xaa079a1602ea7541, 0x91588901b33d35b6,
    0x94e64a60c5decaae, 0x563d678023c4d6e4, 0x7837ba886d2326b9, 0xba30ce34ac947136,
    0x48d404c5052030c0, 0x25be841b3118f854, 0xbd80271544659f00, 0x6dc7bc14fd79daf8,
    0x85ff6de07c73f66c, 0xefb2f4928b03505d, 0x5f86d0c63c11ed05, 0xfc892d26511f40ee,
    0xe8f25281f6aaed84, 0xfc015db71b4c290c, 0xf02279cb73167f55, 0x75eebedac84f1930,
    0x2320311f2c8702e6, 0xb190b1693e4c6d1e, 0x0bd99532a0f545e0, 0x434c6e01256c4c84,
    0x0eaf457d059d25fa, 0x0a2d47d766df2b38, 0x0fae824e061e5d75, 0xaf6db5a24e0f678d,
    0x9702bb2924fced10, 0x58abda508f69c854, 0x3bc6d6c351191579, 0x7ccb5b969e1e5954,
    0x8d5d544276fe8f3f, 0x98cf8083dab964df, 0x8b9e4a1fb2da1562, 0xd634a8d84942a325,
    0x0154c268c2259f55, 0x557f4de71bb9e04f, 0x916a0d144bc80f16, 0x174e6517632c0274,
    0xc9de4a7be265b33f, 0x7da01977e8ddc6ff, 0xa41fd7fbd1e83ce5, 0xaee31b0309eef8ac,
    0x414b2bef72122d54, 0xc11bb1986d0604fd, 0xba7d0c9802bc141e, 0xeba03e875f2d1221,
    0x73f0bd4d071e1297, 0x6c24394ebffc5e90, 0x0096677c25b6779e, 0x38fcebf2c733c7c3,
    0x5a1c90c832c28ea9, 0xdb0769f59c298164, 0x722e7d861241457b, 0x751093eabcf350e5,
    0x12f8a549dc66732b, 0x139069bce27cb869, 0x73039294e11c517d, 0x4f435d869cd50587,
    0xc2b5aedbd4b1cdfb, 0x8941e2f64f913b5e, 0x1e41ad6aa1629179, 0x61edb01000be6925,
    0xbf176c093232cd0a, 0x9eaedb35635ffab9, 0xf65e6bd1bbce4b78, 0xaa398ac5995b8f05,
    0x403af8da146911ed, 0x326b6c8b6218ad94, 0xa3de6787572c07e7, 0x68174f39da1147e1,
    0x3589f7a35d7fc85a, 0x34bab11ebbdc13de, 0x4319f21e1f31abea, 0xae77be598db8ed0e,
    0x1194b43f79f47b7f, 0x9524f83f54052b27, 0xdea03d0b5b25624e, 0xc6ecef90b977c5ef,
    0x3bb42586ebd54e48, 0xdb57993c5bd2d09d, 0x3d9ef301cae56077, 0xb6c11becfc86dcf0,
    0xcdbaf85c7c47f9e6, 0x07a6507c306c37ad, 0xdc5f12291721dca6, 0x12dc209ef9cbde62,
    0x1c87418490ef45ed, 0x9e8c53bbcecc9331, 0x01d16a7ad2b3f718, 0x4775699ce35d8f91,
    0xf9f722a44c81601f, 0xd8090b0b08e6f94c, 0x898ae6e5901dbe8d, 0xbcde2488cbaa79ea,
)
# fmt: on

GEAR = np.array(_GEAR_VALUES, dtype=np.uint64)
GEAR.setflags(write=False)


def generate_gear_table(context: str = GEAR_CONTEXT) -> np.ndarray:
    """Re-derive the gear table by the documented procedure.

    Examples
    --------
    >>> bool((generate_gear_table() == GEAR).all())
    True
    """
    import blake3

    vals = [
        int.from_bytes(blake3.blake3(bytes([i]), derive_key_context=context).digest(length=8), "little")
        for i in range(256)
    ]
    return np.array(vals, dtype=np.uint64)
