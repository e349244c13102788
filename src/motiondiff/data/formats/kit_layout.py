"""The KIT-ML layout: HumanML3D's folders and files, holding 251 KIT-ML features of 21 joints.

    <root>/new_joint_vecs/<id>.npy   (T, 251) KIT-ML features, millimetres, 12.5 fps
    <root>/new_joints/<id>.npy       (T, 21, 3) joint positions in millimetres (not read here)
    <root>/texts/<id>.txt            one annotation per line: caption#tokens#start#end, seconds
    <root>/{train,val,test}.txt      the ids of each split, one per line (half of them mirrored, "M" ids)
    <root>/Mean.npy, Std.npy         (251,) statistics of the features

Reading, items and skips are the HumanML3D reader's (humanml3d_layout.py). KIT-ML's captions
describe whole motions (0.0#0.0); a sub-clip would be cut at int(seconds * 20), as the dataset's
loaders do for KIT-ML too (clip_fps), not at its 12.5 fps.
"""

from dataclasses import replace

from motiondiff.data.formats.humanml3d_layout import HUMANML3D_LAYOUT

KIT_LAYOUT = replace(
    HUMANML3D_LAYOUT,
    name="kit",
    representation="kit",
    hint="download KIT-ML as prepared for HumanML3D (new_joint_vecs/, texts/, splits, Mean.npy, Std.npy)",
    clip_fps=20.0,
)
