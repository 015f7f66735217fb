// Avat3r animated splat viewer (ours; Spark + three.js do the splatting and sorting).
//
// Loads a scene written by avat3r.export.viewer_scene (see docs/VIEWER.md):
//   scene.json   counts, code names/ranges, presets, clips (codes per frame, optional head poses), camera
//   base.bin     float32 [N, 14]: centre xyz, scale xyz, quaternion wxyz, opacity, rgb   (neutral avatar)
//   deltas.bin   float16 [C, N, 3]: centre motion per unit of each code dimension (linear expression basis)
// Each frame: centres = base + sum_k z_k * delta_k for the current code z (a clip frame, or live slider values
// sent by the page with postMessage({type: "avat3r-code", code: [...]})), written into Spark's packed splats.
// State for tests and benchmarks: window.avat3rViewer = {ready, error, stage, frames, updates, fps, playing, clip}.

import * as THREE from "three";
import { OrbitControls } from "three/addons/controls/OrbitControls.js";
import { SparkRenderer, SplatMesh, PackedSplats, utils } from "@sparkjsdev/spark";

const state = (window.avat3rViewer = { ready: false, error: null, stage: "modules loaded", frames: 0, updates: 0, fps: 0,
  playing: true, clip: null });
const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);

function fail(message) {
  state.error = message;
  $("msg").textContent = message;
  $("msg").style.display = "block";
}

function halfToFloat(h) {
  const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 0x1f, f = h & 0x3ff;
  if (e === 0) return s * f * 2 ** -24;
  if (e === 31) return f ? NaN : s * Infinity;
  return s * (1 + f / 1024) * 2 ** (e - 15);
}

async function fetchBytes(url) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`cannot load ${url.split("/").pop()} (HTTP ${r.status})`);
  return r.arrayBuffer();
}

async function main() {
  const sceneUrl = params.get("scene");
  if (!sceneUrl) return fail("No avatar yet: create one, then press “Open the live 3D viewer”.");
  const base = new URL(sceneUrl, location.href);
  state.stage = "fetching the scene";
  const scene = await (await fetch(base)).json();
  const n = scene.count, c = scene.dims;
  const [baseBuf, deltaBuf] = await Promise.all([
    fetchBytes(new URL(scene.files.base, base)), fetchBytes(new URL(scene.files.deltas, base))]);
  const attrs = new Float32Array(baseBuf);
  if (attrs.length !== n * 14) throw new Error(`base.bin holds ${attrs.length / 14} splats, scene.json says ${n}`);
  const halves = new Uint16Array(deltaBuf);
  if (halves.length !== c * n * 3) throw new Error(`deltas.bin does not match ${c} dims x ${n} splats`);
  state.stage = "building the splats";
  const table = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) table[h] = halfToFloat(h);
  const deltas = new Float32Array(halves.length);
  for (let i = 0; i < halves.length; i++) deltas[i] = table[halves[i]];

  // centres relative to the head centre, so orbiting turns the head about itself
  const [cx, cy, cz] = scene.center;
  const baseCentres = new Float32Array(n * 3);
  const packedArray = new Uint32Array(n * 4);
  for (let i = 0; i < n; i++) {
    const a = attrs.subarray(i * 14, i * 14 + 14);
    baseCentres[3 * i] = a[0] - cx; baseCentres[3 * i + 1] = a[1] - cy; baseCentres[3 * i + 2] = a[2] - cz;
    utils.setPackedSplat(packedArray, i, a[0] - cx, a[1] - cy, a[2] - cz, a[3], a[4], a[5],
      a[7], a[8], a[9], a[6], a[10], a[11], a[12], a[13]);
  }
  const packed = new PackedSplats({ packedArray, numSplats: n });

  const canvas = $("canvas");
  const renderer = new THREE.WebGLRenderer({ canvas, antialias: false, preserveDrawingBuffer: true });
  renderer.setPixelRatio(Math.min(window.devicePixelRatio || 1, 2));
  renderer.setClearColor(new THREE.Color(0x1b1b1f));
  const view = new THREE.Scene();
  const cam = new THREE.PerspectiveCamera(scene.camera.fov, 1, 0.01, 50);
  const home = new THREE.Vector3(0, 0, scene.camera.distance);
  cam.position.copy(home);
  view.add(new SparkRenderer({ renderer }));
  const mesh = new SplatMesh({ packedSplats: packed });
  view.add(mesh);
  const controls = new OrbitControls(cam, canvas);
  controls.target.set(0, 0, 0);
  controls.enableDamping = false;
  controls.minDistance = 0.15;
  controls.maxDistance = 4;
  controls.update();

  const resize = () => {
    const w = canvas.clientWidth, h = canvas.clientHeight;
    renderer.setSize(w, h, false);
    cam.aspect = w / Math.max(h, 1);
    cam.updateProjectionMatrix();
  };
  window.addEventListener("resize", resize);
  resize();

  // ---- animation state ----
  const clips = scene.clips || {};
  const names = Object.keys(clips);
  const select = $("clip");
  for (const k of names) select.add(new Option(k, k));
  if (!names.length) select.style.display = "none";
  let clipName = params.get("clip") && clips[params.get("clip")] ? params.get("clip") : names[0] || null;
  select.value = clipName || "";
  let live = null;          // code set from outside (sliders); shown while no clip plays
  let t0 = performance.now();
  let lastKey = "";
  const centres = new Float32Array(n * 3);
  state.clip = clipName;
  state.playing = !!clipName && params.get("play") !== "0";

  const setPlaying = (p) => {
    state.playing = p && !!clipName;
    $("play").textContent = state.playing ? "pause" : "play";
    t0 = performance.now();
  };
  setPlaying(state.playing);
  $("play").onclick = () => setPlaying(!state.playing);
  select.onchange = () => { clipName = select.value; state.clip = clipName; setPlaying(true); };
  $("reset").onclick = () => { cam.position.copy(home); controls.target.set(0, 0, 0); controls.update(); };
  window.addEventListener("message", (e) => {
    const d = e.data || {};
    if (d.type === "avat3r-code" && Array.isArray(d.code)) {
      live = d.code.slice(0, c).map(Number);
      setPlaying(false);
    } else if (d.type === "avat3r-play") {
      setPlaying(d.play !== false);
    }
  });

  function currentFrame(now) {
    if (state.playing && clipName) {
      const clip = clips[clipName];
      const t = Math.max(0, ((now - t0) / 1000) * clip.fps);
      const f = Math.floor(t) % clip.codes.length;
      return { code: clip.codes[f], pose: clip.poses ? clip.poses[f] : null, key: `${clipName}:${f}` };
    }
    const code = live || (scene.presets && scene.presets.neutral) || new Array(c).fill(0);
    return { code, pose: null, key: "live:" + code.join(",") };
  }

  function applyCode(code) {
    centres.set(baseCentres);
    for (let k = 0; k < c; k++) {
      const z = code[k];
      if (!z) continue;
      const d = deltas.subarray(k * n * 3, (k + 1) * n * 3);
      for (let j = 0; j < n * 3; j++) centres[j] += z * d[j];
    }
    for (let i = 0; i < n; i++) utils.setPackedSplatCenter(packedArray, i, centres[3 * i], centres[3 * i + 1], centres[3 * i + 2]);
    packed.needsUpdate = true;
    mesh.updateVersion();
    state.updates++;
  }

  function applyPose(pose) {
    // pose: [yaw, pitch, roll] degrees (+ optional translation in metres), the driver's head motion
    if (!pose) { mesh.rotation.set(0, 0, 0); mesh.position.set(0, 0, 0); return; }
    const r = Math.PI / 180;
    mesh.rotation.set(-pose[1] * r, pose[0] * r, pose[2] * r, "YXZ");  // pitch + = face up = about -x
    mesh.position.set(pose[3] || 0, pose[4] || 0, pose[5] || 0);
  }

  let fpsT = performance.now(), fpsN = 0;
  renderer.setAnimationLoop((now) => {
    const fr = currentFrame(now);
    if (fr.key !== lastKey) { applyCode(fr.code); applyPose(fr.pose); lastKey = fr.key; }
    controls.update();
    renderer.render(view, cam);
    state.frames++; fpsN++;
    if (now - fpsT > 1000) {
      state.fps = (fpsN * 1000) / (now - fpsT); fpsT = now; fpsN = 0;
      $("info").textContent = `${n.toLocaleString()} splats · ${state.fps.toFixed(1)} fps`;
    }
  });
  $("msg").style.display = "none";
  state.stage = "running";
  state.ready = true;
}

main().catch((e) => fail(`The viewer failed: ${e.message || e}`));
