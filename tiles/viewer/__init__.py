"""Static files of the CesiumJS viewer page (index.html, viewer.js, viewer.css); see tiles.write_viewer."""
