// CIM Twin viewer: opens 3D Tiles tilesets with CesiumJS (no ion token, no network), shows a clicked feature's
// metadata and animates water frames (one tileset per output time).
//   index.html?tileset=URL[&tileset=URL...][&frames=URL,URL,...][&interval=ms][&sse=16]
// or a viewer-config.json next to the page: {"tilesets": [{"url": ..., "name": ...}], "frames": [...],
//   "imagery": [{"url": "dem/hillshade/{z}/{x}/{y}.png", "minzoom": .., "maxzoom": .., "bounds": [w, s, e, n],
//                "legend": "flood/depth/legend.png", "alpha": 0.8}]}  (XYZ PNG map tiles draped on the globe)
// window.cimViewer exposes state and helpers for scripted checks (ready, errors, stats(), pickAt(), pickWorld()).
(function () {
  "use strict";
  const params = new URLSearchParams(window.location.search);
  const state = { ready: false, errors: [], tilesets: [], frames: [], frame: 0, picked: null, imagery: [] };
  window.cimViewer = state;
  window.addEventListener("error", (e) => state.errors.push(String(e.message || e)));
  window.addEventListener("unhandledrejection", (e) => state.errors.push(String(e.reason)));
  const status = document.getElementById("status");
  const setStatus = (text) => { status.textContent = text; };

  Cesium.Ion.defaultAccessToken = undefined;
  const viewer = new Cesium.Viewer("cesiumContainer", {
    baseLayer: false, terrainProvider: new Cesium.EllipsoidTerrainProvider(), geocoder: false,
    baseLayerPicker: false, animation: false, timeline: false, homeButton: false, sceneModePicker: false,
    navigationHelpButton: false, fullscreenButton: false, infoBox: false, selectionIndicator: false,
    skyBox: false, skyAtmosphere: false, requestRenderMode: false,
  });
  const scene = viewer.scene;
  scene.globe.baseColor = Cesium.Color.fromCssColorString("#4a5a48");
  scene.backgroundColor = Cesium.Color.fromCssColorString("#1d2630");
  // a head light, so that shading does not depend on the time of day of the sun
  scene.light = new Cesium.DirectionalLight({ direction: new Cesium.Cartesian3(0, 0, -1) });
  scene.preRender.addEventListener(() => {
    const d = Cesium.Cartesian3.add(scene.camera.directionWC, scene.camera.rightWC, new Cesium.Cartesian3());
    Cesium.Cartesian3.normalize(Cesium.Cartesian3.add(d, Cesium.Cartesian3.multiplyByScalar(scene.camera.upWC, -0.5, new Cesium.Cartesian3()), d), scene.light.direction);
  });
  scene.renderError.addEventListener((_s, err) => state.errors.push("render: " + String(err)));
  state.viewer = viewer;

  async function config() {
    const tilesets = params.getAll("tileset").map((url) => ({ url, name: url }));
    let frames = (params.get("frames") || "").split(",").filter((s) => s.length);
    let imagery = [];
    if (!tilesets.length && !frames.length) {
      try {
        const resp = await fetch("viewer-config.json");
        if (resp.ok) {
          const cfg = await resp.json();
          tilesets.push(...(cfg.tilesets || []).map((t) => (typeof t === "string" ? { url: t, name: t } : t)));
          frames = cfg.frames || [];
          imagery = cfg.imagery || [];
          if (cfg.frameInterval && !params.get("interval")) params.set("interval", String(cfg.frameInterval));
        }
      } catch (err) { /* no config: nothing to show */ }
    }
    return { tilesets, frames, imagery };
  }

  async function load(url) {
    const tileset = await Cesium.Cesium3DTileset.fromUrl(url, {
      maximumScreenSpaceError: Number(params.get("sse") || 16),
    });
    tileset.tileFailed.addEventListener((e) => state.errors.push(`tile ${e.url}: ${e.message}`));
    scene.primitives.add(tileset);
    return tileset;
  }

  function allLoaded(tilesets) {
    return Promise.all(tilesets.map((t) => new Promise((resolve) => {
      const done = () => { t.allTilesLoaded.removeEventListener(done); resolve(); };
      t.allTilesLoaded.addEventListener(done);
    })));
  }

  function properties(feature) {
    const out = {};
    for (const id of feature.getPropertyIds()) {
      const v = feature.getProperty(id);
      out[id] = typeof v === "bigint" ? Number(v) : v;
    }
    return out;
  }

  function pickAt(x, y) {
    const picked = scene.pick(new Cesium.Cartesian2(x, y));
    if (picked instanceof Cesium.Cesium3DTileFeature) return properties(picked);
    return null;
  }
  state.pickAt = pickAt;
  state.pickWorld = function (x, y, z) {
    scene.render();
    const win = Cesium.SceneTransforms.worldToWindowCoordinates(scene, new Cesium.Cartesian3(x, y, z));
    if (!win) return { window: null, properties: null };
    return { window: [win.x, win.y], properties: pickAt(win.x, win.y) };
  };

  function showInfo(props) {
    const body = document.querySelector("#info tbody");
    body.innerHTML = "";
    for (const [k, v] of Object.entries(props || {})) {
      const tr = document.createElement("tr");
      const a = document.createElement("td"); a.textContent = k;
      const b = document.createElement("td"); b.textContent = String(v);
      tr.append(a, b); body.append(tr);
    }
  }
  new Cesium.ScreenSpaceEventHandler(scene.canvas).setInputAction((movement) => {
    state.picked = pickAt(movement.position.x, movement.position.y);
    showInfo(state.picked);
  }, Cesium.ScreenSpaceEventType.LEFT_CLICK);

  state.stats = function () {
    return state.tilesets.concat(state.frames).map((t) => {
      const s = { url: t.resource ? t.resource.url : "", tiles: 0, leaves: 0, loadedLeaves: 0, leafFeatures: 0,
                  loadedTiles: 0, features: 0, show: t.show };
      const walk = (tile) => {
        s.tiles += 1;
        const leaf = tile.children.length === 0;
        if (leaf) s.leaves += 1;
        if (tile.contentReady && tile.content) {
          s.loadedTiles += 1;
          s.features += tile.content.featuresLength;
          if (leaf) { s.loadedLeaves += 1; s.leafFeatures += tile.content.featuresLength; }
        }
        tile.children.forEach(walk);
      };
      walk(t.root);
      return s;
    });
  };

  function addImagery(layer) {
    const options = { url: layer.url, minimumLevel: layer.minzoom || 0, maximumLevel: layer.maxzoom || 18 };
    if (layer.bounds) options.rectangle = Cesium.Rectangle.fromDegrees(...layer.bounds);
    const provider = new Cesium.UrlTemplateImageryProvider(options);
    provider.errorEvent.addEventListener((e) => state.errors.push(`imagery ${layer.url}: ${e && e.message}`));
    const imageryLayer = viewer.imageryLayers.addImageryProvider(provider);
    imageryLayer.alpha = layer.alpha === undefined ? 1.0 : layer.alpha;
    if (layer.legend) {
      const img = document.createElement("img");
      img.src = layer.legend; img.alt = "legend"; img.style.display = "block";
      document.getElementById("panel").append(img);
    }
    state.imagery.push(imageryLayer);
  }

  state.setFrame = function (i) {
    if (!state.frames.length) return;
    state.frame = ((i % state.frames.length) + state.frames.length) % state.frames.length;
    state.frames.forEach((t, j) => { t.show = j === state.frame; });
    document.getElementById("frameSlider").value = String(state.frame);
    document.getElementById("frameLabel").textContent = `frame ${state.frame + 1} / ${state.frames.length}`;
  };

  (async function main() {
    try {
      const cfg = await config();
      state.tilesets = await Promise.all(cfg.tilesets.map((t) => load(t.url)));
      state.frames = await Promise.all(cfg.frames.map(load));
      cfg.imagery.forEach(addImagery);
      const all = state.tilesets.concat(state.frames);
      if (!all.length) { setStatus("no tileset: add ?tileset=URL"); state.ready = true; return; }
      if (state.frames.length) {
        document.getElementById("frames").hidden = false;
        document.getElementById("frameSlider").max = String(state.frames.length - 1);
        document.getElementById("frameSlider").addEventListener("input", (e) => state.setFrame(Number(e.target.value)));
        state.setFrame(0);
        let timer = null;
        const play = () => { timer = setInterval(() => state.setFrame(state.frame + 1), Number(params.get("interval") || 1000)); };
        const btn = document.getElementById("play");
        btn.addEventListener("click", () => {
          if (timer) { clearInterval(timer); timer = null; btn.textContent = "play"; } else { play(); btn.textContent = "pause"; }
        });
        if (params.get("autoplay") !== "0") play(); else btn.textContent = "play";
      }
      const spheres = all.map((t) => t.boundingSphere);
      const sphere = Cesium.BoundingSphere.fromBoundingSpheres(spheres);
      const pitch = Cesium.Math.toRadians(Number(params.get("pitch") || -60));
      viewer.camera.flyToBoundingSphere(sphere, {
        duration: 0, offset: new Cesium.HeadingPitchRange(0, pitch, sphere.radius * Number(params.get("range") || 2.2)),
      });
      setStatus("loading tiles…");
      await allLoaded(all.filter((t) => t.show));
      scene.render();
      const st = state.stats();
      setStatus(`${st.length} tileset(s), ${st.reduce((a, s) => a + s.loadedTiles, 0)} tiles loaded — click a feature`);
      state.ready = true;
    } catch (err) {
      state.errors.push(String(err && err.stack ? err.stack : err));
      setStatus("error: " + String(err));
      state.ready = true;
    }
  })();
})();
