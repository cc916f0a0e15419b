"""Synthetic videos with ground truth: walking person-like figures, occlusions and shot cuts; opt-in,
fades through black, dissolves, close-ups and people entering from the frame's edge.

``render_video(path, SynthConfig(...)) -> SynthGroundTruth`` writes a video with ffmpeg and returns
MOTChallenge ground truth plus per-person attributes (chosen from the taxonomy, deterministic by seed).
"""

from portrait_builder.synth.render import Person, SynthConfig, SynthGroundTruth, render_frames, render_video

__all__ = ["Person", "SynthConfig", "SynthGroundTruth", "render_frames", "render_video"]
