/** CMAF muxing for the browser publisher (headers, chunks, the CMSF catalog). */
export { BoxWriter, box, concat, fullBox } from "./boxes.js";
export { type CatalogEntry, catalogPayload } from "./catalog.js";
export { type Sample, chunk } from "./fragment.js";
export { type AudioTrackConfig, type TrackConfig, type VideoTrackConfig, avcCodecString, initSegment, parseOpusHead } from "./init.js";
export { TrackMuxer, breaksAfter, minVideoDurationUs } from "./muxer.js";
export { Fmp4Splitter, type SplitChunk, SplitError, type SplitTrack, splitInit } from "./split.js";
