// Stand-ins for the programs in the images critest and the node e2e suite
// pull (see integration/critest.sh images, integration/node-e2e.sh images).
// Standard library only: no downloads.
module dockershim-critest-images

go 1.22
