
lumib
18X<