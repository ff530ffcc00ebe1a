// Stand-ins for the programs in the images critest pulls (see
// integration/critest.sh images). Standard library only: no downloads.
module dockershim-critest-images

go 1.22
