"""Exports of an animated avatar beyond one static .ply: a linear expression basis for real-time viewers
(``basis``), the browser viewer's scene files (``viewer_scene``), per-frame .ply sequences (``sequence``), and the
.ply + turntable + expression clip that every avatar-making route writes (``clips``)."""
