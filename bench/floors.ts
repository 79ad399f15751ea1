// The floors live in @hearth/runtime, where `hearth bench startup` measures them too.
export { directSocketFloor, prepareFloorImage, runcRunFloor, socketRequest, waitForSocket, type FloorImage } from '@hearth/runtime';
